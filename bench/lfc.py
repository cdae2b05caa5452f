#!/usr/bin/env python3
"""LFC W1A1 (784-1024x3-10) folded by `bnnflow fold`: RTL-measured images/s and yosys resources.

For each first-layer input width (``--input-bits``, default ``8,1``):

1. write an LFC export with random weights (bnnflow.testing.random_artifact,
   default folding) and run ``bnnflow fold EXPORT --device D --clock MHZ``
   (the fastest folding the model says fits; or ``--target-fps``);
2. re-export with that folding and stream images back to back through the
   generated RTL core in Verilator (bnnflow.sim.bulk.run_bulk: no
   backpressure, every score checked against the golden model); the measured
   cycles per image give images/s at the clock;
3. estimate LUT/FF/BRAM36 with yosys (``synth_xilinx -family xc7``) on the
   generated accelerator, unit by unit (every bnn_mvtu with its memory
   files, every repacker, the shell with the core black-boxed), as
   ``bnnflow report`` does; ``--whole`` also synthesizes the flattened
   ``bnnflow_accel`` in one run (7-8 minutes and 1.6 GB for LFC) and then
   judges the targets by that figure;
4. print the figures against BNN-PYNQ's LFC (118,883 images/s in 28.4k LUT,
   110 BRAM36 on a Pynq-Z1 at 100 MHz), the ~347k images/s memory-bandwidth
   bound of issue 7, and the targets: >= 300,000 images/s, <= the device's
   LUTs, >= 8.4 images/s per LUT, measured cycles <= 1.05 x NF*SF.

With 8-bit pixels the first layer is an ``int_threshold`` layer (each lane adds
or subtracts an 8-bit pixel). BNN-PYNQ's LFC binarizes the input first; so does
``bnnflow train --input-bits 1``, and ``bnnflow export`` then writes the first
layer as an XNOR-popcount layer with shifted thresholds
(``bnnflow.export.binary_input_as_xnor``), which ``--input-bits 1`` here builds
the same way: the like-for-like comparison with BNN-PYNQ's W1A1 LFC.

    .venv/bin/python bench/lfc.py --whole --json /tmp/lfc.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bnnflow import costs, report
from bnnflow.cli import main as bnnflow
from bnnflow.folding import load_folding
from bnnflow.sim.bulk import run_bulk
from bnnflow.testing import random_artifact

HIDDEN = (1024, 1024, 1024)
FEATURES, CLASSES = 784, 10
BNN_PYNQ_FPS, BNN_PYNQ_LUT, BNN_PYNQ_BRAM = 118_883, 28_400, 110
BANDWIDTH_BOUND_FPS = 347_000
TARGET_FPS, TARGET_PER_LUT, TARGET_RATIO = 300_000, 8.4, 1.05


def run(bits: int, args: argparse.Namespace, tmp: Path) -> dict:
    dev = costs.device(args.device)
    base = random_artifact(tmp / f"lfc{bits}-default", seed=1, input_features=FEATURES, hidden=HIDDEN,
                           classes=CLASSES, input_bits=bits, n_vectors=1, generate=(),
                           binary_input_as_xnor=bits == 1)
    folding_file = tmp / f"lfc{bits}-folding.json"
    cmd = ["fold", str(base.root), "--device", args.device, "--clock", f"{args.clock:g}", "--out", str(folding_file)]
    if args.target_fps:
        cmd += ["--target-fps", str(args.target_fps)]
    print(f"$ bnnflow {' '.join(cmd)}", flush=True)
    start = time.monotonic()
    if bnnflow(cmd) != 0:
        raise SystemExit(f"bnnflow fold failed for {bits}-bit input")
    fold_seconds = time.monotonic() - start
    folding = load_folding(folding_file)
    a = random_artifact(tmp / f"lfc{bits}", seed=1, input_features=FEATURES, hidden=HIDDEN, classes=CLASSES,
                        input_bits=bits, folding=folding, n_vectors=args.images, generate=("rtl",),
                        binary_input_as_xnor=bits == 1)
    images = np.fromfile(a.path("vectors/images.bin"), dtype=np.uint8).reshape(args.images, -1)
    sim = run_bulk(a, images, check=True)
    nfsf = max(l.nf * l.sf for l in a.layers)
    print(f"RTL (Verilator, {args.images} images back to back, scores = golden): {sim.cycles_per_image:.1f} "
          f"cycles/image, NF*SF {nfsf} (build {sim.build_seconds:.0f} s, run {sim.sim_seconds:.1f} s)", flush=True)

    rep = report.build_report(a.root, dev, args.clock, use_yosys=not args.no_yosys, whole=args.whole,
                              timeout=args.whole_timeout, log=lambda m: print(m, flush=True))
    t, u = rep.total.rounded(), rep.unit_total.rounded()
    out = {"input_bits": bits, "first_layer": a.layers[0].kind, "folding": [[f.pe, f.simd] for f in folding], "fold_seconds": round(fold_seconds, 2),
           "layer_cycles": [l.nf * l.sf for l in a.layers], "nfsf": nfsf,
           "measured_cycles": sim.cycles_per_image, "images_per_second": args.clock * 1e6 / sim.cycles_per_image,
           "estimate_source": rep.source + (", whole accelerator" if rep.whole is not None else ""),
           "lut": t.lut, "ff": t.ff, "bram36": t.bram36, "dsp": t.dsp, "lutram": t.lutram,
           "unit_total": u.as_dict(), "whole_seconds": rep.whole_seconds,
           "units": [(r.name, r.resources.rounded().as_dict(), r.seconds) for r in rep.rows],
           "model": costs.total(r.resources for r in rep.model_rows).rounded().as_dict(),
           "yosys_seconds": round(sum(r.seconds or 0 for r in rep.rows), 1)}
    return out


def summary(r: dict, args: argparse.Namespace) -> list[str]:
    dev = costs.device(args.device)
    fps, lut = r["images_per_second"], r["lut"]
    per_lut = fps / lut
    ratio = r["measured_cycles"] / r["nfsf"]
    lines = [
        f"LFC W1A1 784-1024x3-10, {r['input_bits']}-bit input ({r.get('first_layer', 'int_threshold')} first), "
        "folding (PE, SIMD) "
        + " ".join(f"({pe},{simd})" for pe, simd in r["folding"]) + f", NF*SF per layer {r['layer_cycles']}",
        f"  RTL-measured: {r['measured_cycles']:.1f} cycles/image (NF*SF {r['nfsf']}, ratio {ratio:.3f}) -> "
        f"{fps:,.0f} images/s at {args.clock:g} MHz",
        f"  {r['estimate_source']}: {lut:,} LUT ({100 * lut / dev.lut:.1f}% of {dev.name}; {r['lutram']:,} as LUT RAM), "
        f"{r['ff']:,} FF, {r['bram36']:g} BRAM36 ({100 * r['bram36'] / dev.bram36:.0f}%), {r['dsp']:g} DSP; "
        f"model estimate {r['model']['lut']:,} LUT / {r['model']['bram36']:g} BRAM36",
        f"  images/s per LUT: {per_lut:.2f} (BNN-PYNQ: {BNN_PYNQ_FPS / BNN_PYNQ_LUT:.2f} = {BNN_PYNQ_FPS:,} images/s "
        f"in {BNN_PYNQ_LUT:,} LUT, {BNN_PYNQ_BRAM} BRAM36, on the board); x{fps / BNN_PYNQ_FPS:.2f} BNN-PYNQ's rate, "
        f"{100 * fps / BANDWIDTH_BOUND_FPS:.0f}% of the ~{BANDWIDTH_BOUND_FPS:,} images/s memory-bandwidth bound",
    ]
    if r.get("whole_seconds") is not None:
        u = r["unit_total"]
        lines.append(f"  (whole bnnflow_accel flattened in one yosys run, {r['whole_seconds']:.0f} s; the unit-by-unit "
                     f"sum is {u['lut']:,} LUT, {u['ff']:,} FF, {u['bram36']:g} BRAM36)")
    checks = [("images/s >= 300,000", fps >= TARGET_FPS, f"{fps:,.0f}"),
              (f"LUT <= {dev.lut:,}", lut <= dev.lut, f"{lut:,}"),
              (f"BRAM36 <= {dev.bram36}", r["bram36"] <= dev.bram36, f"{r['bram36']:g}"),
              ("images/s per LUT >= 8.4", per_lut >= TARGET_PER_LUT, f"{per_lut:.2f}"),
              ("cycles <= 1.05 x NF*SF", ratio <= TARGET_RATIO, f"{ratio:.3f}")]
    lines.append("  targets: " + "; ".join(f"{name}: {'met' if ok else 'MISSED'} ({value})"
                                            for name, ok, value in checks))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input-bits", default="8,1", help="first-layer input widths to run (default 8,1)")
    parser.add_argument("--device", default="xc7z020", choices=sorted(costs.DEVICES))
    parser.add_argument("--clock", type=float, default=100.0, help="MHz (default 100)")
    parser.add_argument("--target-fps", type=float, help="pass --target-fps to bnnflow fold instead of "
                                                         "the fastest folding that fits")
    parser.add_argument("--images", type=int, default=64, help="images through the RTL (default 64)")
    parser.add_argument("--no-yosys", action="store_true", help="model estimates instead of yosys")
    parser.add_argument("--whole", action="store_true", help="also synthesize the whole flattened accelerator")
    parser.add_argument("--whole-timeout", type=float, default=3600.0,
                        help="seconds allowed for each yosys run (default 3600)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    parser.add_argument("--summary-from", type=Path, help="print the summary of a run saved with --json")
    args = parser.parse_args(argv)
    if args.summary_from:
        results = json.loads(args.summary_from.read_text())
    else:
        results = []
        with tempfile.TemporaryDirectory(prefix="bnnflow-lfc-") as tmp:
            for bits in [int(b) for b in args.input_bits.split(",")]:
                results.append(run(bits, args, Path(tmp)))
    print()
    for r in results:
        print("\n".join(summary(r, args)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
