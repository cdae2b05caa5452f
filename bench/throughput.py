#!/usr/bin/env python3
"""Throughput of the generated RTL: measured cycles per image vs the NF*SF model.

For one network shape (default: the demo's 64-256-256-10, 5-bit input;
``--network lfc``: BNN-PYNQ's LFC with its published folding) and a
sweep of foldings, this builds the generated top, streams images back to back
through the RTL simulation and prints, per folding: the bottleneck layer's
NF*SF, the measured cycles between output vectors, their ratio, and the
frame rate that implies at a clock of --mhz (100 MHz as on a PYNQ-Z1). With
--resources it also asks yosys (synth_xilinx, 7-series) for LUT/FF estimates.
Writes a PNG chart next to --out. Figures are recorded in docs/PERFORMANCE.md.

    .venv/bin/python bench/throughput.py --sim verilator --out docs/throughput.png
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bnnflow.folding import LayerFolding
from bnnflow.sim.network import run_network
from bnnflow.testing import random_artifact

#: (name, [(PE, SIMD) per layer]) for the 64-256-256-10 demo shape.
DIGITS_FOLDINGS = [
    ("minimal", [(1, 8), (1, 8), (1, 8)]),
    ("small", [(4, 16), (4, 16), (2, 16)]),
    ("default", [(16, 32), (16, 32), (10, 32)]),
    ("balanced", [(32, 16), (32, 64), (10, 32)]),
    ("wide", [(64, 64), (64, 64), (10, 64)]),
]

#: BNN-PYNQ's LFC (784-1024x3-10, 8-bit input) with its published folding
#: (SIMD, PE) = (64,32) (32,64) (64,32) (8,16); our PE must divide MH, so the
#: 10-class layer uses PE 10 instead of 16 (BNN-PYNQ pads it to 16 outputs).
LFC_FOLDINGS = [("bnn-pynq", [(32, 64), (64, 32), (32, 64), (10, 8)])]

#: network name -> (input features, hidden sizes, classes, input bits, foldings)
NETWORKS = {
    "digits": (64, (256, 256), 10, 5, DIGITS_FOLDINGS),
    "lfc": (784, (1024, 1024, 1024), 10, 8, LFC_FOLDINGS),
}


def yosys_resources(design_dir: Path, top: str) -> dict[str, int] | None:
    """LUT/FF/BRAM estimate of the generated top from yosys synth_xilinx (None without yosys)."""
    yosys = shutil.which("yosys")
    if yosys is None:
        return None
    sources = " ".join(str(p) for p in sorted(design_dir.glob("*.v")))
    with tempfile.TemporaryDirectory() as tmp:
        stat = Path(tmp) / "stat.json"
        # -defer: elaborate modules only with the top's parameters (their default
        # memory-file names do not exist); -flatten: one module, so stat -json is one table.
        script = (f"read_verilog -defer {sources}; synth_xilinx -family xc7 -noiopad -flatten -top {top}; "
                  f"tee -q -o {stat} stat -json")
        proc = subprocess.run([yosys, "-q", "-p", script], cwd=design_dir, capture_output=True, text=True)
        if proc.returncode != 0:
            return None
        cells = json.loads(stat.read_text())["design"]["num_cells_by_type"]
    luts = sum(v for k, v in cells.items() if k.startswith("LUT"))
    ffs = sum(v for k, v in cells.items() if k.startswith("FD"))
    brams = sum(v for k, v in cells.items() if k.startswith("RAMB"))
    lutram = sum(v for k, v in cells.items() if k.startswith("RAM") and not k.startswith("RAMB"))
    return {"LUT": luts, "FF": ffs, "LUTRAM": lutram, "BRAM": brams}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    parser.add_argument("--images", type=int, default=32, help="images streamed back to back per folding")
    parser.add_argument("--mhz", type=float, default=100.0, help="clock for the frame-rate column")
    parser.add_argument("--resources", action="store_true", help="add yosys LUT/FF estimates (slower)")
    parser.add_argument("--network", choices=sorted(NETWORKS), default="digits",
                        help="digits: the demo's 64-256-256-10; lfc: BNN-PYNQ's 784-1024x3-10")
    parser.add_argument("--foldings", help="comma-separated subset of the network's foldings "
                        f"(digits: {', '.join(n for n, _ in DIGITS_FOLDINGS)}; lfc: bnn-pynq); default all")
    parser.add_argument("--out", default="docs/throughput.png", help="chart to write")
    args = parser.parse_args(argv)
    features, hidden, classes, input_bits, foldings = NETWORKS[args.network]
    chosen = args.foldings.split(",") if args.foldings else [name for name, _ in foldings]
    unknown = set(chosen) - {name for name, _ in foldings}
    if unknown:
        parser.error(f"unknown folding(s) {sorted(unknown)} for network {args.network}")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, fold in [f for f in foldings if f[0] in chosen]:
            folding = [LayerFolding(pe, simd) for pe, simd in fold]
            artifact = random_artifact(Path(tmp) / name, seed=1, input_features=features, hidden=hidden,
                                       classes=classes, input_bits=input_bits, folding=folding,
                                       n_vectors=args.images, generate=("rtl",))
            images = np.fromfile(artifact.path("vectors/images.bin"), dtype=np.uint8).reshape(args.images, -1)
            expected = np.fromfile(artifact.path("vectors/scores.bin"), dtype="<i4").reshape(args.images, -1)
            result = run_network(artifact, images, sim=args.sim, timing_vectors=args.images)
            if not np.array_equal(result.scores, expected):
                print(f"{name}: RTL scores differ from golden", file=sys.stderr)
                return 1
            per_layer = [l.nf * l.sf for l in artifact.layers]
            row = {"folding": name, "pe_simd": fold, "layer_cycles": per_layer, "model": result.model_cycles,
                   "measured": result.cycles_per_image,
                   "fps": args.mhz * 1e6 / result.cycles_per_image}
            if args.resources:
                row["resources"] = yosys_resources(artifact.root / "rtl", "bnnflow_top")
            rows.append(row)
            print(f"{name:9s} cycles/layer={per_layer} model={row['model']:4d} measured={row['measured']:7.1f} "
                  f"ratio={row['measured'] / row['model']:.3f} fps@{args.mhz:.0f}MHz={row['fps']:,.0f}"
                  + (f" resources={row['resources']}" if args.resources else ""), flush=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["model"] for r in rows], 0.4, label="model: max NF*SF")
    ax.bar(x + 0.2, [r["measured"] for r in rows], 0.4, label=f"measured ({args.sim})")
    ax.set_xticks(x, [r["folding"] for r in rows])
    ax.set_yscale("log")
    ax.set_ylabel("cycles per image")
    shape = "-".join(str(n) for n in (features, *hidden, classes))
    ax.set_title(f"bnnflow RTL, {shape}: cycles per image by folding")
    ax.legend()
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"chart written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
