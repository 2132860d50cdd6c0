#!/usr/bin/env bash
# The CUDA checks and timings recorded in the issue notes, in one run on a GPU machine:
#   bash benchmarks/gpu_session.sh            (from the repository root; needs torch with CUDA)
# The package is used from the source tree (PYTHONPATH), so nothing needs installing there.
set -u
export PYTHONPATH="$PWD" OMP_NUM_THREADS=4
out=${OUT:-/tmp/gpu_session}; mkdir -p "$out"
dyn() { python3 -m dynforecast "$@"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
echo "== CPU vs CUDA agreement and equivariance on the GPU"; python3 -m benchmarks.cuda_checks
echo "== speed (eager fp32, bf16 autocast, torch.compile)"; python3 -m benchmarks.speed_cuda --repeats 30
echo "== end-to-end train/evaluate/predict on CUDA"
dyn generate nbody -o "$out/nbody.h5" -n 300 --mode fast
for model in estag egnn sake; do
  /usr/bin/time -f "$model cuda train wall %e s, max RSS %M KB" \
    python3 -m dynforecast train "$out/nbody.h5" --model $model --out "$out/run-$model" --epochs 5 --device cuda 2>&1 | tail -2
done
/usr/bin/time -f "sake cuda+amp train wall %e s" \
  python3 -m dynforecast train "$out/nbody.h5" --model sake --out "$out/run-sake-amp" --epochs 5 --device cuda --amp 2>&1 | tail -2
/usr/bin/time -f "estag cpu(4 threads) train wall %e s" \
  python3 -m dynforecast train "$out/nbody.h5" --model estag --out "$out/run-estag-cpu" --epochs 5 --device cpu 2>&1 | tail -1
dyn evaluate "$out/run-sake/best.pt" "$out/nbody.h5" --json --device cuda | head -c 400; echo
dyn predict "$out/nbody.h5" --checkpoint "$out/run-estag/best.pt" --steps 20 -o "$out/forecast.h5" --device cuda
ngpu=$(nvidia-smi -L | wc -l)
echo "== DDP: torchrun, one NCCL rank per GPU ($ngpu)"
timeout 300 torchrun --standalone --nproc_per_node="$ngpu" -m dynforecast train "$out/nbody.h5" \
  --model egnn --out "$out/run-ddp" --epochs 3 --device cuda 2>&1 | tail -4
echo "torchrun exit ${PIPESTATUS[0]}"
