"""Benchmark the bulk Verilator harness against the cocotb testbench on an LFC-class network.

Builds a random LFC-class network (784-1024x3-10, 8-bit input, the folding of
BNN-PYNQ's LFC as in docs/PERFORMANCE.md: 512 cycles per image), then:

1. compiles the bulk harness from scratch in a private build root (cold build)
   and again (the cached build: the content hash finds the executable);
2. runs ``--images`` images through it, the first ``--random-images`` with
   random source idle and sink backpressure, the rest back to back; every
   score must equal the golden model's (0 mismatches, else exit status 1);
3. runs ``--cocotb-images`` of the same images through the cocotb testbench
   (``run_network``, Verilator) for images/s and the speed ratio.

Example (the figures of docs/PERFORMANCE.md, "Bulk RTL simulation"):

    .venv/bin/python bench/rtl_bulk.py --out runs/bench_rtl_bulk.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bnnflow.folding import LayerFolding as F
from bnnflow.golden import GoldenModel
from bnnflow.testing import random_artifact

#: BNN-PYNQ's LFC folding (PE, SIMD) per layer: NF*SF = 416, 512, 512, 128 -> 512 cycles per image.
LFC_FOLDING = [F(32, 64), F(64, 32), F(32, 64), F(10, 8)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/rtl_bulk.py",
        description="Bulk RTL simulation (bnnflow.sim.bulk, a compiled Verilator harness) against the cocotb "
                    "testbench on an LFC-class net (784-1024x3-10, 8-bit input, 512 cycles per image). Prints "
                    "cold and cached build times, run time and images/s of both paths, and fails (exit status 1) "
                    "on any score that differs from the golden model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--images", type=int, default=10_000, help="images through the bulk harness")
    p.add_argument("--random-images", type=int, default=2_000,
                   help="how many of them (the first ones) are sent with random idle and backpressure")
    p.add_argument("--idle", type=float, default=0.2, help="per-cycle probability of a 1..4 cycle TVALID gap")
    p.add_argument("--backpressure", type=float, default=0.3,
                   help="per-cycle probability of a 1..4 cycle TREADY-low burst")
    p.add_argument("--cocotb-images", type=int, default=50,
                   help="images through the cocotb testbench for its images/s (0: skip)")
    p.add_argument("--hidden", default="1024,1024,1024", help="hidden layer sizes (the LFC's by default)")
    p.add_argument("--seed", type=int, default=0, help="seed of the network, the images and the pauses")
    p.add_argument("--build-root", type=Path, default=None,
                   help="build root (BNNFLOW_SIM_BUILD) for this benchmark; the build is cold only if it does not "
                        "hold this network's build yet (default: a fresh temporary folder, removed afterwards)")
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)
    if args.images < 1 or not 0 <= args.random_images <= args.images:
        p.error(f"--images must be >= 1 and --random-images in 0..--images (got {args.images}, {args.random_images})")
    if args.cocotb_images < 0 or args.cocotb_images > args.images:
        p.error(f"--cocotb-images must be in 0..--images (got {args.cocotb_images})")
    try:
        args.hidden = tuple(int(h) for h in args.hidden.split(","))
    except ValueError:
        p.error(f"--hidden {args.hidden!r}: expected comma-separated layer sizes such as 1024,1024,1024")
    if len(args.hidden) != 3:
        p.error(f"--hidden {args.hidden!r}: the LFC folding needs three hidden layers")
    return args


def child_cpu() -> float:
    """User + system CPU seconds of finished child processes (compilers, the harness) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)    # progress lines as they come, also into a file
    from bnnflow.sim import bulk, toolchain

    toolchain.setup()
    work = Path(tempfile.mkdtemp(prefix="bnnflow-bench-bulk-"))
    build_root = args.build_root or work / "sim_build"
    os.environ["BNNFLOW_SIM_BUILD"] = str(build_root.resolve())   # a cold build, not the checkout's cache
    figures: dict = {"images": args.images, "random_images": args.random_images, "idle": args.idle,
                     "backpressure": args.backpressure, "hidden": list(args.hidden)}
    try:
        t0 = time.perf_counter()
        a = random_artifact(work / "lfc", seed=args.seed, input_features=784, hidden=args.hidden, classes=10,
                            input_bits=8, folding=LFC_FOLDING, n_vectors=4, generate=("rtl",))
        rng = np.random.default_rng(args.seed + 1)
        images = rng.integers(0, 256, size=(args.images, 784), dtype=np.uint8)
        golden = GoldenModel(a).scores(images)
        figures["prepare_s"] = time.perf_counter() - t0
        model = max(l.nf * l.sf for l in a.layers)
        print(f"network: 784-{'-'.join(map(str, args.hidden))}-10, folding (PE, SIMD) "
              f"{[(l.pe, l.simd) for l in a.layers]}, NF*SF {[l.nf * l.sf for l in a.layers]} -> {model} "
              f"cycles/image; artifact + {args.images} images + golden: {figures['prepare_s']:.1f} s")

        # 1. builds: cold, then cached
        from bnnflow.sim.network import design_files

        shape = bulk.StreamShape.of(a)
        sources, _ = design_files(a, work / "gen")
        t0, c0 = time.perf_counter(), child_cpu()
        cold = bulk.build(sources, shape)
        figures["build_cold_s"] = time.perf_counter() - t0
        figures["build_cold_cpu_s"] = child_cpu() - c0
        t0 = time.perf_counter()
        cached = bulk.build(sources, shape)
        figures["build_cached_s"] = time.perf_counter() - t0
        assert cached.cached and cached.binary == cold.binary
        print(f"build: cold {figures['build_cold_s']:.1f} s (compilers' CPU time {figures['build_cold_cpu_s']:.1f} s), "
              f"cached {figures['build_cached_s']:.2f} s ({cold.build_dir})")

        # 2. the bulk run (run_bulk: pack, the cached build, simulate, unpack, scores)
        t0, c0 = time.perf_counter(), child_cpu()
        r = bulk.run_bulk(a, images, seed=args.seed, idle=args.idle, backpressure=args.backpressure,
                          random_images=args.random_images)
        figures["bulk_run_s"] = time.perf_counter() - t0
        figures["bulk_harness_cpu_s"] = child_cpu() - c0
        mismatches = int((r.scores != golden).any(axis=1).sum())
        figures.update(bulk_sim_s=r.sim_seconds, bulk_total_cycles=r.total_cycles,
                       bulk_images_per_s=args.images / figures["bulk_run_s"],
                       bulk_cycles_per_s=r.total_cycles / r.sim_seconds, cycles_per_image=r.cycles_per_image,
                       model_cycles=r.model_cycles, source_pause_cycles=r.source_pause_cycles,
                       sink_pause_cycles=r.sink_pause_cycles, mismatches=mismatches,
                       cold_total_s=figures["build_cold_s"] + figures["bulk_run_s"])
        print(f"bulk: {args.images} images ({args.random_images} with idle {args.idle}, backpressure "
              f"{args.backpressure}) in {figures['bulk_run_s']:.1f} s (harness {r.sim_seconds:.1f} s, "
              f"CPU {figures['bulk_harness_cpu_s']:.1f} s, {r.total_cycles:,} cycles, "
              f"{figures['bulk_cycles_per_s']:,.0f} cycles/s) = "
              f"{figures['bulk_images_per_s']:,.0f} images/s; cycles/image {r.cycles_per_image:.1f} "
              f"(NF*SF {r.model_cycles}); mismatches vs golden: {mismatches}")
        print(f"cold build + run: {figures['cold_total_s']:.1f} s; load average "
              f"{', '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores")

        # 3. the cocotb testbench on the first images
        if args.cocotb_images:
            from bnnflow.sim.network import run_network

            few = images[:args.cocotb_images]
            run_network(a, few[:1], "verilator")        # its build, not timed
            t0 = time.perf_counter()
            c = run_network(a, few, "verilator", seed=args.seed)
            figures["cocotb_s"] = time.perf_counter() - t0
            # run_network simulates max(N, 12) images back to back (no random phase without idle/backpressure)
            figures["cocotb_images_per_s"] = max(len(few), 12) / figures["cocotb_s"]
            figures["speedup"] = figures["bulk_images_per_s"] / figures["cocotb_images_per_s"]
            figures["cocotb_equal"] = bool(np.array_equal(c.scores, r.scores[:len(few)]))
            print(f"cocotb: {len(few)} images in {figures['cocotb_s']:.1f} s = {figures['cocotb_images_per_s']:.1f} "
                  f"images/s; equal to bulk: {figures['cocotb_equal']}; bulk is {figures['speedup']:.0f}x faster")
            if not figures["cocotb_equal"]:
                mismatches += 1
    finally:
        shutil.rmtree(work, ignore_errors=True)     # the artifact, and the build root unless --build-root
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=1) + "\n")
    print("PASS: 0 mismatches" if mismatches == 0 else f"FAIL: {mismatches} mismatching images")
    return 0 if mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
