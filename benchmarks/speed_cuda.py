"""CUDA speed of every learned model: eager float32, bfloat16 autocast, and torch.compile.

    python -m benchmarks.speed_cuda [--repeats 50] [--json] [--no-compile]

Same cases as the CPU scripts (benchmarks/speed_models.py for ESTAG and EGNN,
benchmarks/speed_sake.py for SAKE), so CPU and GPU figures refer to identical batches. Each figure
is the median ms per batch after warm-up, with ``torch.cuda.synchronize()`` inside the timed call
so that asynchronous kernel launches are not mistaken for finished work. The eager float32 row is
the baseline the other two are compared with (ratio = eager / variant; above 1 = faster).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

from benchmarks import speed_models, speed_sake
from benchmarks.timing import median_ms
from dynforecast.models import ForecastModel, WindowBatch


def cases() -> list[tuple[str, Callable[[], ForecastModel], Callable[[], WindowBatch]]]:
    rows = [(name, model, batch) for name, model, batch in speed_models.CASES]
    rows += [(f"sake-{name}", model, batch) for name, (model, batch) in speed_sake.CASES.items()]
    return rows


def timed_pair(
    model: Callable[[WindowBatch], torch.Tensor],
    parameters: torch.nn.Module,
    batch: WindowBatch,
    repeats: int,
    autocast: bool,
) -> tuple[float, float]:
    """(forward ms, forward+backward ms) on CUDA, synchronised."""

    def forward() -> None:
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            model(batch)
        torch.cuda.synchronize()

    def forward_backward() -> None:
        parameters.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            loss = (model(batch).float() - batch.target).square().mean()
        loss.backward()
        torch.cuda.synchronize()

    return median_ms(forward, repeats, 5), median_ms(forward_backward, repeats, 5)


def run(repeats: int, use_compile: bool, report: Callable[[dict], None]) -> list[dict]:
    """Time every case and variant; ``report`` gets each row as soon as it exists, so a variant
    that fails (its error is recorded in the row) does not lose the rows measured before it."""
    device = torch.device("cuda")
    results = []
    for name, build_model, build_batch in cases():
        torch.manual_seed(0)
        model = build_model().to(device)
        batch = build_batch().to(device)
        variants: list[tuple[str, Callable, bool]] = [
            ("eager_fp32", model, False),
            ("eager_bf16_autocast", model, True),
        ]
        compile_seconds = None
        if use_compile:
            compiled = torch.compile(model)
            start = time.perf_counter()
            (compiled(batch) - batch.target).square().mean().backward()
            torch.cuda.synchronize()
            compile_seconds = round(time.perf_counter() - start, 1)
            variants.append(("compiled_fp32", compiled, False))
        baseline = None
        for variant, fn, autocast in variants:
            try:
                forward_ms, backward_ms = timed_pair(fn, model, batch, repeats, autocast)
            except RuntimeError as exc:
                row = {"model": name, "variant": variant, "error": str(exc).splitlines()[0]}
                results.append(row)
                report(row)
                continue
            if baseline is None:
                baseline = backward_ms
            results.append(
                {
                    "model": name,
                    "variant": variant,
                    "batch": batch.num_graphs,
                    "forward_ms": round(forward_ms, 3),
                    "forward_backward_ms": round(backward_ms, 3),
                    "samples_per_s_train": round(batch.num_graphs / backward_ms * 1e3),
                    "speedup_vs_eager_fp32": round(baseline / backward_ms, 2),
                    "compile_s": compile_seconds if variant == "compiled_fp32" else None,
                }
            )
            report(results[-1])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device; this benchmark needs one")
    print(f"# {torch.cuda.get_device_name()} torch {torch.__version__}")
    if args.json:
        print(json.dumps(run(args.repeats, not args.no_compile, lambda row: None), indent=1))
        return
    header = f"{'model':16} {'variant':20} {'batch':>5} {'fwd ms':>8} {'fwd+bwd ms':>10} {'samples/s':>10} {'x eager':>7}"
    print(header)

    def print_row(r: dict) -> None:
        if "error" in r:
            print(f"{r['model']:16} {r['variant']:20} failed: {r['error']}", flush=True)
            return
        print(
            f"{r['model']:16} {r['variant']:20} {r['batch']:>5} {r['forward_ms']:>8.2f} "
            f"{r['forward_backward_ms']:>10.2f} {r['samples_per_s_train']:>10} "
            f"{r['speedup_vs_eager_fp32']:>7.2f}"
            + (f"  compile {r['compile_s']} s" if r["compile_s"] else ""),
            flush=True,
        )

    run(args.repeats, not args.no_compile, print_row)


if __name__ == "__main__":
    main()
