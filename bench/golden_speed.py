"""Golden-model speed on an LFC-shaped network, against a torch float32 MLP of the same shape.

Builds BNN-PYNQ's LFC shape (784-1024x3-10, 8-bit input) with
bnnflow.testing.random_artifact in a temporary folder, then times

- golden: GoldenModel(artifact).scores on N uint8 images (exact integers through float BLAS),
- torch: a float32 nn.Sequential (Linear + sign, same shape) under torch.no_grad,
- old: the original int64 computation (GoldenModel._trace_int64) on a subset,
  extrapolated to images/s,

and checks that the golden trace equals the int64 one bit for bit on that subset.
Exit status 1 if it does not.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bnnflow.golden import GoldenModel
from bnnflow.testing import random_artifact

LFC_HIDDEN = (1024, 1024, 1024)
LFC_INPUTS, LFC_CLASSES, LFC_BITS = 784, 10, 8


class Sign(torch.nn.Module):
    """The binary activation of a BNN in float: -1, 0 or +1 elementwise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sign(x)


def torch_mlp(inputs: int, hidden: tuple[int, ...], classes: int) -> torch.nn.Sequential:
    """Float32 Linear + Sign stack of the golden network's shape (eval mode)."""
    sizes = [inputs, *hidden, classes]
    modules: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        modules.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            modules.append(Sign())
    return torch.nn.Sequential(*modules).eval()


#: Pause before each timed run: OpenBLAS's and OpenMP's worker threads keep spinning for a while after
#: a call returns, and would take the CPUs from whichever library runs next.
SETTLE_SECONDS = 0.5


def best_seconds(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time of each run over ``repeats`` rounds; the runs alternate so shared-machine load hits all alike."""
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            time.sleep(SETTLE_SECONDS)
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def blas_threads() -> str:
    """numpy's BLAS library and thread count, when threadpoolctl can tell."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    info = [f"{p.get('internal_api')} {p.get('version')}, {p.get('num_threads')} threads"
            for p in threadpool_info() if p.get("user_api") == "blas"]
    return "; ".join(info) or "none found"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time the golden model's scores on an LFC-shaped random network (784-1024x3-10, 8-bit "
                    "input) against a torch float32 MLP of the same shape and the old int64 golden path, "
                    "and check the golden model against the int64 path bit for bit.")
    parser.add_argument("--images", type=int, default=10_000,
                        help="images timed for golden and torch (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed rounds; the best round counts (default: %(default)s)")
    parser.add_argument("--old-images", type=int, default=200,
                        help="subset run through the slow int64 path, timed once and extrapolated to "
                             "images/s, and compared with golden's whole trace (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random network and images (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both torch (torch.set_num_threads) and numpy's BLAS (threadpoolctl); "
                             "default: each library's own default (all cores)")
    args = parser.parse_args(argv)
    for name in ("images", "repeats", "old_images", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")

    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(limits=args.threads, user_api="blas")
    rng = np.random.default_rng(args.seed)
    images = rng.integers(0, 1 << LFC_BITS, size=(args.images, LFC_INPUTS), dtype=np.uint8)
    subset = images[:args.old_images]
    with tempfile.TemporaryDirectory() as tmp:
        artifact = random_artifact(Path(tmp) / "lfc", seed=args.seed, input_features=LFC_INPUTS, hidden=LFC_HIDDEN,
                                   classes=LFC_CLASSES, input_bits=LFC_BITS, generate=())
        model = GoldenModel(artifact)

    torch.manual_seed(args.seed)
    mlp = torch_mlp(LFC_INPUTS, LFC_HIDDEN, LFC_CLASSES)
    x_torch = torch.from_numpy(images.astype(np.float32))   # converted outside the timer (in torch's favour)

    def run_torch() -> torch.Tensor:
        with torch.no_grad():
            return mlp(x_torch)

    print(f"network: {LFC_INPUTS}-{'x'.join(map(str, LFC_HIDDEN))}-{LFC_CLASSES}, {LFC_BITS}-bit input; golden "
          f"layers in {', '.join(f'{d}/{k}' for d, k in zip(model.layer_dtypes, model.layer_packing))} "
          "(dtype/neurons per GEMM column)")
    print(f"threads: torch {torch.get_num_threads()}; numpy BLAS {blas_threads()}; "
          f"load average before timing {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    model.scores(images[:256]), run_torch()                  # warm-up
    best = best_seconds({"golden": lambda: model.scores(images), "torch": run_torch}, args.repeats)

    started = time.perf_counter()
    old = model._trace_int64(subset)
    old_seconds = time.perf_counter() - started
    new = model.trace(subset)
    exact = all(np.array_equal(a, b) for a, b in zip(new.accumulators + new.outputs, old.accumulators + old.outputs))
    exact = exact and np.array_equal(model.scores(subset), old.scores)

    rate = {name: args.images / seconds for name, seconds in best.items()}
    rate["old"] = args.old_images / old_seconds
    rows = [(f"golden scores ({args.images} images, best of {args.repeats})", rate["golden"]),
            (f"torch float32 MLP, no_grad ({args.images} images, best of {args.repeats})", rate["torch"]),
            (f"old int64 golden ({args.old_images} images, timed once, extrapolated)", rate["old"])]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value:10,.0f} images/s")
    print(f"golden / torch = {rate['golden'] / rate['torch']:.2f}x   new / old = {rate['golden'] / rate['old']:.0f}x")
    print(f"bit-exact vs int64 on {args.old_images} images (every layer's accumulators and outputs, and scores): "
          f"{'yes' if exact else 'NO'}")
    print(f"target golden >= 1.0x torch float32: {'met' if rate['golden'] >= rate['torch'] else 'missed'}")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
