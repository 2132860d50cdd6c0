"""Correctness of the CUDA path: CPU and CUDA agree, and symmetries hold on the GPU.

    python -m benchmarks.cuda_checks

For every learned model on the benchmark batches (10 windows each): the float64 forward on CUDA
against the float64 forward on the CPU (same weights), and `equivariance_errors` (rotations,
reflections, translations, permutations) of the CUDA float32 model. Not a pytest file because CI
has no GPU; run it wherever one is present and record the figures.
"""

from __future__ import annotations

import torch

from benchmarks.speed_cuda import cases
from dynforecast.models.symmetry import equivariance_errors


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device; these checks need one")
    generator = torch.Generator().manual_seed(0)
    print(f"# {torch.cuda.get_device_name()} torch {torch.__version__}")
    for name, build_model, build_batch in cases():
        torch.manual_seed(0)
        model = build_model().double()
        full = build_batch()
        batch = full.to(dtype=torch.float64)
        cpu = model(batch)
        gpu = model.to("cuda")(batch.to("cuda")).cpu()
        agreement = (cpu - gpu).abs().max().item()
        model32 = model.float()
        batch32 = full.to(dtype=torch.float32)
        errors = equivariance_errors(lambda b, m=model32: m(b.to("cuda")).cpu(), batch32, generator)
        worst = max(error / (scale + 1e-12) for error, scale in errors.values())
        print(
            f"{name:16} cpu-vs-cuda float64 max |diff| {agreement:.2e}; "
            f"cuda float32 worst relative equivariance error {worst:.2e} "
            + " ".join(f"{k}={v[0]:.1e}" for k, v in errors.items())
        )


if __name__ == "__main__":
    main()
