"""The ``bnnflow`` command: train -> export -> verify (and more).

Each subcommand has its own ``--help``. A typical session::

    bnnflow train --dataset digits --method bnn --hidden 256,256 --epochs 60 --out runs/demo
    bnnflow export runs/demo
    bnnflow verify runs/demo --against golden,rtl,hls
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

METHODS = ("bnn",)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 256,256, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive integers, got {text!r}")
    return values


def cmd_train(args: argparse.Namespace) -> int:
    from .datasets import load_dataset
    from .model.train import train

    dataset = load_dataset(args.dataset, args.split_seed)
    config = {
        "method": args.method,
        "arch": "mlp",
        "hidden": args.hidden,
        "dataset": args.dataset,
        "split_seed": args.split_seed,
        "seed": args.seed,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "input_features": dataset.input_features,
        "input_shape": list(dataset.input_shape),
        "input_bits": dataset.input_bits,
        "num_classes": dataset.num_classes,
    }
    print(f"dataset {dataset.name}: {len(dataset.x_train)} train / {len(dataset.x_test)} test, "
          f"{dataset.input_features} inputs of {dataset.input_bits} bits, {dataset.num_classes} classes")
    metrics = train(config, dataset, args.out, progress=not args.quiet)
    print(f"test accuracy {metrics['test_acc'] * 100:.2f}% (train {metrics['train_acc'] * 100:.2f}%), "
          f"run saved to {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_run

    artifact = export_run(args.run, args.folding, args.out)
    print(f"exported {len(artifact.layers)} layers to {artifact.root}")
    for layer in artifact.layers:
        print(f"  L{layer.index} {layer.kind:15s} {layer.in_features:5d} -> {layer.out_features:5d}  "
              f"PE={layer.pe:3d} SIMD={layer.simd:3d}  NF*SF={layer.nf}*{layer.sf}={layer.cycles_per_vector} cycles")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify_run

    return verify_run(args.run, [a.strip() for a in args.against.split(",") if a.strip()],
                      sim=args.sim, limit=args.limit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bnnflow",
        description="Binarized neural networks from PyTorch training to a bit-exact, verified FPGA accelerator.",
        epilog="Run `bnnflow COMMAND --help` for each command's options.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a quantized network and save a run folder",
                       description="Train a network; writes OUT/config.json, OUT/model.pt and OUT/metrics.json.")
    p.add_argument("--dataset", default="digits",
                   help="digits (scikit-learn, offline), mnist (downloads the IDX files), or idx:DIR "
                        "(a folder with train/t10k images and labels in MNIST IDX format, raw or .gz)")
    p.add_argument("--method", choices=METHODS, default="bnn",
                   help="bnn: binary weights and activations, integer first layer, integer scores")
    p.add_argument("--hidden", type=_int_list, default=[256, 256], help="hidden layer sizes, e.g. 256,256")
    p.add_argument("--epochs", type=int, default=60, help="training epochs (default 60)")
    p.add_argument("--batch-size", type=int, default=64, help="minibatch size (default 64)")
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate, cosine-annealed (default 0.01)")
    p.add_argument("--seed", type=int, default=0, help="seed for initialisation and batch order")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the stratified train/test split (digits)")
    p.add_argument("--out", required=True, help="run folder to write, e.g. runs/demo")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="fold, pack and write the hardware artifact of a run",
                       description="Writes RUN/export/: manifest.json, packed weights, integer thresholds, "
                                   "RTL memory files + generated top, HLS header, golden test vectors "
                                   "(format: docs/ARTIFACT.md).")
    p.add_argument("run", help="training run folder")
    p.add_argument("--folding", help='JSON file {"layers": [{"pe": P, "simd": S}, ...]}; default: chosen automatically')
    p.add_argument("--out", help="artifact folder (default RUN/export)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("verify", help="run the test images through each level and compare with torch",
                       description="Prints accuracy and agreement with the torch model per level; exits 1 on "
                                   "any mismatch. Levels: golden (numpy integer model), rtl (cocotb simulation "
                                   "of the generated Verilog), hls (g++ C-simulation of the HLS engines).")
    p.add_argument("run", help="training run folder (exported)")
    p.add_argument("--against", default="golden", help="comma-separated levels: golden,rtl,hls (default golden)")
    p.add_argument("--sim", choices=("verilator", "icarus"), default="verilator", help="RTL simulator")
    p.add_argument("--limit", type=int, help="use only the first N test images")
    p.set_defaults(func=cmd_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"bnnflow {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
