#!/usr/bin/env python3
"""Randomized equivalence campaign: RTL (Icarus, Verilator) and HLS C-sim against the golden model.

Each configuration seed draws a random network (1-4 layers, 1..300 input
features of 1..8 bits, hidden widths up to 256, 2..16 classes), a random
folding (see :func:`draw_config`: SIMD up to 300, so words over 64 bits and
padded inputs are common), random test images and random source-idle /
sink-backpressure probabilities. The RTL testbench
compares every output word and TLAST with the golden model while the bus
stalls; the HLS C-simulation compares every score. Every score of every
level is also compared here with the golden scores stored in the artifact.

    .venv/bin/python bench/soak.py                          # the recorded campaign (docs/RELIABILITY.md)
    .venv/bin/python bench/soak.py --configs 4 --rtl-vectors 50 --hls-vectors 100   # a quick look
    .venv/bin/python bench/soak.py --only 1017              # reproduce one configuration seed

Exits 1 when any vector mismatched (each failing seed is printed with the
command that reproduces it), 0 otherwise. ``--out FILE`` writes the results
as JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bnnflow import hlsgen
from bnnflow.folding import LayerFolding
from bnnflow.writer import read_vectors

MAX_NEURONS = 300      # input features
MAX_SIMD = 300
MAX_LANES = 2048       # PE x SIMD of one layer


@dataclass
class SoakConfig:
    """One random network, folding and bus behaviour; fully determined by ``seed``."""

    seed: int
    input_features: int
    hidden: tuple[int, ...]
    classes: int
    input_bits: int
    folding: list[tuple[int, int]]          # (PE, SIMD) per layer
    idle: float
    backpressure: float

    def describe(self) -> str:
        sizes = "-".join(str(s) for s in (self.input_features, *self.hidden, self.classes))
        fold = " ".join(f"{p}x{s}" for p, s in self.folding)
        return (f"{sizes} in{self.input_bits}b PExSIMD[{fold}] idle {self.idle:.2f} "
                f"backpressure {self.backpressure:.2f}")


@dataclass
class SoakResult:
    seed: int
    network: str
    vectors: dict[str, int] = field(default_factory=dict)      # level -> vectors compared
    mismatches: dict[str, int] = field(default_factory=dict)   # level -> differing scores (or failures)
    errors: dict[str, str] = field(default_factory=dict)       # level -> message when a level failed to run
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(self.mismatches.values()) or bool(self.errors)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def draw_config(seed: int) -> SoakConfig:
    """The configuration of ``seed`` (the same on every machine: numpy's PCG64 stream).

    Foldings are drawn per layer as SF in 1..8 and NF in 1..8 (so a vector
    takes at most 64 cycles, 128 in the score layer, whose NF is classes / PE,
    and a campaign simulates many vectors) with SIMD
    = ceil(inputs / SF) plus a random excess (padding), PE up to 32 and
    PE x SIMD at most MAX_LANES (so Verilator builds stay in seconds). Hidden
    widths are PE x NF; the class count is free and its PE one of its divisors.
    """
    rng = np.random.default_rng(seed)
    input_features = int(rng.integers(1, MAX_NEURONS + 1))
    input_bits = int(rng.integers(1, 9))
    n_hidden = int(rng.integers(0, 4))
    classes = int(rng.integers(2, 17))
    hidden: list[int] = []
    folding: list[tuple[int, int]] = []
    mw, bits = input_features, input_bits
    for k in range(n_hidden + 1):
        sf = 1 if rng.random() < 0.25 else int(rng.integers(1, 9))   # SF 1: the widest words
        simd = min(mw, MAX_SIMD, -(-mw // sf) + int(rng.integers(0, 4)))
        while simd * bits > hlsgen.MAX_WORD_BITS:     # keep every folding buildable by both engines
            simd = -(-simd // 2)
        max_pe = max(1, min(32, MAX_LANES // simd))
        if k < n_hidden:
            pe = int(rng.integers(1, max_pe + 1))
            mh = pe * int(rng.integers(1, 9))
            hidden.append(mh)
        else:
            mh = classes
            pe = int(rng.choice([d for d in _divisors(mh) if d <= max_pe]))
        folding.append((pe, simd))
        mw, bits = mh, 1
    idle, backpressure = (round(float(v), 2) for v in rng.uniform(0.0, 0.6, size=2))
    return SoakConfig(seed, input_features, tuple(hidden), classes, input_bits, folding, idle, backpressure)


def run_config(seed: int, levels: tuple[str, ...], sims: tuple[str, ...], rtl_vectors: int,
               hls_vectors: int) -> SoakResult:
    """Build the artifact of ``seed`` and run each level on its vectors; never raises for a level's failure."""
    from bnnflow.hlsflow import run_csim
    from bnnflow.sim.network import run_network
    from bnnflow.testing import random_artifact

    cfg = draw_config(seed)
    result = SoakResult(seed, cfg.describe())
    n = max(rtl_vectors if "rtl" in levels else 0, hls_vectors if "hls" in levels else 0)
    with tempfile.TemporaryDirectory(prefix=f"bnnflow-soak-{seed}-") as tmp:
        artifact = random_artifact(Path(tmp) / "export", seed=seed, input_features=cfg.input_features,
                                   hidden=cfg.hidden, classes=cfg.classes, input_bits=cfg.input_bits,
                                   folding=[LayerFolding(pe, simd) for pe, simd in cfg.folding],
                                   n_vectors=n, generate=("rtl", "hls") if "hls" in levels else ("rtl",))
        images, _, golden = read_vectors(artifact)
        runs = [(f"rtl-{sim}", rtl_vectors) for sim in sims if "rtl" in levels] + \
               ([("hls", hls_vectors)] if "hls" in levels else [])
        for level, count in runs:
            if count <= 0:
                continue
            started = time.perf_counter()
            try:
                if level == "hls":
                    scores = run_csim(artifact, build_dir=Path(tmp) / "csim", limit=count).scores
                else:
                    scores = run_network(artifact, images[:count], level[4:], check=True, seed=seed,
                                         idle=cfg.idle, backpressure=cfg.backpressure).scores
                result.mismatches[level] = int(np.count_nonzero(np.asarray(scores) != golden[:count]))
                result.vectors[level] = count
            except Exception as exc:  # a testbench assertion or a build failure is a finding, not a crash
                lines = str(exc).strip().splitlines() or [""]
                detail = next((l.strip() for l in lines if "error" in l.lower() and l is not lines[0]), lines[-1])
                result.errors[level] = f"{type(exc).__name__}: {lines[0][:200]} {detail[:300]}"
                result.vectors[level] = count
                result.mismatches[level] = count
            result.seconds[level] = round(time.perf_counter() - started, 2)
    return result


def _run_one(args: tuple) -> SoakResult:
    return run_config(*args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Configuration seeds are BASE*1000 + i for i < --configs.")
    parser.add_argument("--configs", type=int, default=40, help="random configurations (default 40)")
    parser.add_argument("--seed", type=int, default=1, help="base seed (default 1)")
    parser.add_argument("--only", type=int, nargs="+", help="run exactly these configuration seeds")
    parser.add_argument("--levels", default="rtl,hls", help="rtl, hls or rtl,hls (default)")
    parser.add_argument("--sims", default="icarus,verilator", help="RTL simulators (default both)")
    parser.add_argument("--rtl-vectors", type=int, default=500, help="vectors per configuration per simulator")
    parser.add_argument("--hls-vectors", type=int, default=1500, help="vectors per configuration in C-sim")
    parser.add_argument("--jobs", type=int, default=2, help="configurations run in parallel (default 2)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    levels = tuple(v for v in args.levels.split(",") if v)
    sims = tuple(v for v in args.sims.split(",") if v)
    if not levels or set(levels) - {"rtl", "hls"} or set(sims) - {"icarus", "verilator"}:
        parser.error(f"--levels takes rtl,hls and --sims icarus,verilator; got {args.levels!r}, {args.sims!r}")
    for name in ("configs", "rtl_vectors", "hls_vectors", "jobs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if "rtl" in levels:
        from bnnflow.sim import toolchain

        for sim in sims:
            toolchain.require(sim)
    seeds = args.only or [args.seed * 1000 + i for i in range(args.configs)]
    work = [(s, levels, sims, args.rtl_vectors, args.hls_vectors) for s in seeds]

    from tqdm import tqdm

    started = time.perf_counter()
    results: list[SoakResult] = []
    with multiprocessing.get_context("spawn").Pool(min(args.jobs, len(work))) as pool:
        for res in tqdm(pool.imap_unordered(_run_one, work), total=len(work), desc="soak", unit="config"):
            results.append(res)
            if res.failed:
                tqdm.write(f"FAIL seed {res.seed} ({res.network}): {res.mismatches} {res.errors}")
    wall = time.perf_counter() - started
    results.sort(key=lambda r: r.seed)

    totals: dict[str, list[int]] = {}
    for res in results:
        for level, count in res.vectors.items():
            t = totals.setdefault(level, [0, 0, 0])
            t[0] += 1
            t[1] += count
            t[2] += res.mismatches.get(level, 0)
    print(f"\n{'level':16s} {'configs':>7s} {'vectors':>9s} {'mismatches':>10s}")
    for level in sorted(totals):
        c, v, m = totals[level]
        print(f"{level:16s} {c:7d} {v:9d} {m:10d}")
    all_vectors = sum(t[1] for t in totals.values())
    all_mismatches = sum(t[2] for t in totals.values())
    print(f"{'total':16s} {len(results):7d} {all_vectors:9d} {all_mismatches:10d}   wall {wall:.0f} s, "
          f"{args.jobs} job(s), seeds {seeds[0]}..{seeds[-1]}")
    failed = [r for r in results if r.failed]
    for res in failed:
        print(f"reproduce: .venv/bin/python bench/soak.py --only {res.seed} --levels {args.levels} "
              f"--sims {args.sims}   # {res.network}")
    if args.out:
        Path(args.out).write_text(json.dumps({
            "command": " ".join(["bench/soak.py", *(argv if argv is not None else sys.argv[1:])]),
            "wall_seconds": round(wall, 1), "totals": totals,
            "results": [asdict(r) for r in results]}, indent=1) + "\n")
    print("PASS: 0 mismatches" if not failed else f"FAIL: {len(failed)} configuration(s) mismatched")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
