"""The ``bnnflow`` command: train -> export -> verify (and more).

Each subcommand has its own ``--help``. A typical session::

    bnnflow train --dataset digits --method bnn --hidden 256,256 --epochs 60 --out runs/demo
    bnnflow export runs/demo
    bnnflow verify runs/demo --against golden,rtl,hls
    bnnflow plot runs/demo

train, export, verify and plot need the ``train`` extra (torch, scikit-learn,
matplotlib, tqdm); without it they stop with one line naming the missing
module and the pip command. The module imports nothing beyond the standard
library, so ``bnnflow --help`` works on a numpy-only install (a PYNQ board).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from .extras import EXTRA_OF, MissingExtraError, missing_message, require

#: Training methods (bnnflow.model.methods.METHODS has their defaults; kept here so --help needs no torch).
METHODS = ("float", "binaryconnect", "bnn", "xnor", "dorefa", "wage")

METHOD_HELP = """methods and their defaults (override them with the options above; all use a cosine LR
schedule except wage, and the MLP of --hidden unless --arch is given):
  float          real weights/activations, BN + ReLU; Adam lr 0.003, cross-entropy
  binaryconnect  binary weights, real ReLU activations, BN after every layer;
                 --variant det|stoch (default det); Adam lr 0.01 with Glorot
                 per-layer LR scaling, weights clipped to [-1,1], squared hinge
                 loss; reports test accuracy with binary and with real weights
  bnn            sign weights and activations (saturated STE), integer first
                 layer, binary integer scores; Adam lr 0.01, cross-entropy;
                 --bn shift (shift-based BN), --optim shift-adamax
  xnor           --variant xnor (default: sign inputs scaled by beta/K) | bwn
                 (real inputs); alpha*sign weights; BN -> sign -> layer -> ReLU
                 -> pool; --first-layer/--last-layer real (default) | quant;
                 Adam lr 0.01
  dorefa         --wbits 1 --abits 2 --gbits 32 (defaults; 1..16 or 32 = float),
                 first/last layers real; Adam lr 0.01
  wage           --wbits 2 --abits 8 --gbits 8 --ebits 8 (2..16); no BN, SSE
                 loss, quantized SGD with stochastic rounding, lr 8 -> 1 -> 1/8
Every method but float exports to hardware (`bnnflow export`, docs/DEPLOY.md),
MLPs (--hidden) and conv nets (--arch; XNOR-Net conv nets are refused for now).
"""


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 256,256, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive integers, got {text!r}")
    return values


GENERATE_TARGETS = ("rtl", "hls")


def _generate_list(text: str) -> tuple[str, ...]:
    if text.strip() == "none":
        return ()
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [n for n in names if n not in GENERATE_TARGETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(GENERATE_TARGETS)}, or none, got {text!r}")
    return tuple(dict.fromkeys(names))


MAX_SEED = 2**32 - 1
DEFAULT_BATCH_SIZE = 64


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _batch_size(text: str) -> int:
    value = _int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2 (BatchNorm needs two samples per batch), "
                                         f"got {text!r}")
    return value


def _seed(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer 0..{MAX_SEED}, got {text!r}")
    return value


def _num_classes(text: str) -> int:
    value = _int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"a classifier needs at least 2 classes, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def _text(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _path(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text


def _check_out_folder(path: str, option: str = "--out") -> None:
    """An output folder may exist, but not as a file."""
    if Path(path).exists() and not Path(path).is_dir():
        raise ValueError(f"{option} {path}: exists and is not a folder")


def cmd_train(args: argparse.Namespace) -> int:
    for module in ("torch", "tqdm"):    # before anything else: the config checks live in the torch package
        require(module, "train", "bnnflow train")
    if args.plot:                       # now, not after the last epoch
        require("matplotlib", "train", "bnnflow train --plot")
    from .datasets import check_classes, load_dataset
    from .model import build_model, summary
    from .model.methods import bits_label, resolve_config
    from .model.train import check_training_setup, train

    config = {
        "method": args.method,
        "arch": args.arch or "mlp",
        "hidden": args.hidden,
        "dataset": args.dataset,
        "split_seed": args.split_seed,
        "seed": args.seed,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
    }
    for key in ("variant", "wbits", "abits", "gbits", "ebits", "bn", "optim", "loss", "lr_scale",
                "schedule", "first_layer", "last_layer"):
        config[key] = getattr(args, key)
    config = resolve_config(config)     # unknown names / bits out of range fail before loading data
    _check_out_folder(args.out)
    batch_given = args.batch_size is not None
    # labels 0..C-1, every class in training unless --num-classes declares C; at least two classes
    dataset = check_classes(load_dataset(args.dataset, args.split_seed, args.input_bits), args.num_classes)
    config.update({
        "input_features": dataset.input_features,
        "input_shape": list(dataset.input_shape),
        "input_bits": dataset.input_bits,
        "num_classes": dataset.num_classes,
    })
    if not batch_given:                 # the default 64, or the whole training set when it is smaller
        config["batch_size"] = min(DEFAULT_BATCH_SIZE, len(dataset.x_train))
    model = build_model(config)         # a conv spec that does not fit the input fails here
    check_training_setup(config, dataset)   # batch size vs training set, labels vs classes
    print(f"dataset {dataset.name}: {len(dataset.x_train)} train / {len(dataset.x_test)} test, "
          f"{dataset.input_features} inputs of {dataset.input_bits} bits, {dataset.num_classes} classes")
    print(f"method {config['method']} {bits_label(config)}, optimizer {config['optim']} lr {config['lr']:g}, "
          f"loss {config['loss']}, {config['epochs']} epochs")
    if not args.quiet:
        print(summary(model))
    metrics = train(config, dataset, args.out, progress=not args.quiet)
    extra = "".join(f", {k[9:]} weights {v * 100:.2f}%" for k, v in metrics.items() if k.startswith("test_acc_"))
    print(f"test accuracy {metrics['test_acc'] * 100:.2f}% (train {metrics['train_acc'] * 100:.2f}%{extra}), "
          f"run saved to {args.out}")
    if args.plot:
        from .model.plot import plot_run
        print(f"curves: {plot_run(args.out)}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    require("matplotlib", "train", "bnnflow plot")
    from .model.plot import plot_run

    print(f"curves: {plot_run(args.run, args.out)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import PURPOSE, export_run

    require("torch", "train", PURPOSE)

    if args.out:
        _check_out_folder(args.out)
    from .folding import FoldingError

    if args.folding and not Path(args.folding).is_file():
        raise FileNotFoundError(f"--folding {args.folding}: " + ("is a folder, expected a JSON file"
                                                                if Path(args.folding).is_dir() else "file not found"))
    try:
        artifact = export_run(args.run, args.folding, args.out, generate=args.generate, abits=args.abits)
    except FoldingError as exc:        # the folding checks name their source "folding": name the file
        if args.folding and str(exc).startswith("folding: "):
            raise FoldingError(f"{args.folding}: {str(exc)[len('folding: '):]}") from None
        raise
    except UnicodeDecodeError as exc:
        if args.folding:
            raise ValueError(f"--folding {args.folding}: not a text file ({exc.reason})") from None
        raise
    print(f"exported {len(artifact.layers)} layers to {artifact.root}")
    for layer in artifact.layers:
        widths = f"W{layer.weight_bits}{'' if layer.weight_encoding == 'sym' else 'i'} A{layer.input_bits}->" + (
            f"{layer.output_bits}" if layer.has_thresholds else "score")
        cycles = f"NF*SF={layer.nf}*{layer.sf}={layer.cycles_per_vector} cycles"
        conv = ""
        if layer.conv is not None:
            c = layer.conv
            cycles = f"NF*SF*pixels={layer.nf}*{layer.sf}*{layer.pixels}={layer.cycles_per_image} cycles"
            conv = (f"  conv {c.kernel}x{c.kernel} pad {c.pad} on {c.ifm_h}x{c.ifm_w}x{c.channels}"
                    + (f", max-pool {c.pool}" if c.pool else ""))
        print(f"  L{layer.index} {layer.kind:15s} {widths:12s} {layer.in_features:5d} -> {layer.out_features:5d}  "
              f"PE={layer.pe:3d} SIMD={layer.simd:3d}  {cycles}{conv}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify import PURPOSE, verify_run

    require("torch", "train", PURPOSE)

    return verify_run(args.run, args.against.split(","), sim=args.sim, limit=args.limit,
                      layer_cycles=args.layer_cycles)


def cmd_bitstream(args: argparse.Namespace) -> int:
    from . import artifact as art
    from . import vivado

    export_dir = vivado.resolve_export(args.run)
    artifact = art.load(export_dir)
    out = Path(args.out) if args.out else export_dir.parent
    stem = vivado.stem(args.board, args.engine)
    build = Path(args.build) if args.build else out / f"{stem}.build"
    hls_ip = args.hls_ip
    if args.engine == "hls" and hls_ip is None:
        if args.prepare_only:
            hls_ip = build / vivado.HLS_IP_SUBDIR
            print(f"run in {build}:", " ".join(vivado.hls_ip_command(export_dir)))
        else:
            hls_ip = vivado.build_hls_ip(export_dir, build)
    params = vivado.write_build(artifact, args.board, args.engine, build, out, hls_ip_dir=hls_ip)
    print(f"prepared {params} (signature 0x{artifact.signature:08x})")
    if args.prepare_only:
        print(f"run in {build}:", " ".join(vivado.vivado_command(build)))
        return 0
    vivado.run_build(build)
    print(f"wrote {out / stem}.bit, .hwh and .signature.json")
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line naming the option and value (plus where to find help)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _add_debug(parser: argparse.ArgumentParser, default=False) -> None:
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show the Python traceback of an error (also: environment BNNFLOW_DEBUG=1)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bnnflow",
        description="Binarized neural networks from PyTorch training to a bit-exact, verified FPGA accelerator.",
        epilog="Run `bnnflow COMMAND --help` for each command's options.")
    _add_debug(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a quantized network and save a run folder",
                       description="Train a network; writes OUT/config.json, OUT/model.pt and OUT/metrics.json "
                                   "(per-epoch loss, accuracy, time). Options left out take the method's "
                                   "defaults (listed below). Needs the 'train' extra (torch, tqdm; "
                                   "scikit-learn for digits, matplotlib for --plot).",
                       epilog=METHOD_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="digits", type=_text,
                   help="digits (scikit-learn, offline), mnist (downloads the IDX files), or idx:DIR "
                        "(a folder with train/t10k images and labels in MNIST IDX format, raw or .gz)")
    p.add_argument("--method", choices=METHODS, default="bnn", help="training method (default bnn; see below)")
    p.add_argument("--hidden", type=_int_list, default=[256, 256],
                   help="MLP hidden layer sizes, e.g. 256,256 (used when --arch is not given)")
    p.add_argument("--arch", type=_text, help="conv net spec instead of the MLP: NCk (conv, same padding), NCkV (no padding), "
                                  "MPk (max-pool), FCn, e.g. 64C3-64C3-MP2-128C3-MP2-FC256 "
                                  "(digits is 8x8: try 32C3-32C3-MP2-64C3-FC128)")
    p.add_argument("--epochs", type=_positive_int, default=60, help="training epochs (default 60)")
    p.add_argument("--batch-size", type=_batch_size,
                   help=f"minibatch size, 2 up to the training set size (default {DEFAULT_BATCH_SIZE}, "
                        f"or the training set size when it is smaller)")
    p.add_argument("--lr", type=_positive_float, help="learning rate (default per method: see below)")
    p.add_argument("--num-classes", type=_num_classes,
                   help="number of classes C (default: largest training label + 1, and every class must "
                        "occur in training); give it when the data has classes absent from training. "
                        "Labels must be 0..C-1")
    p.add_argument("--input-bits", dest="input_bits", type=_positive_int,
                   help="keep the top K bits of each pixel (default: all of them: 5 for digits, 8 for IDX); "
                        "1 binarizes at half range as BNN-PYNQ's LFC does, and the first layer then runs "
                        "on the XNOR-popcount lanes. Feed the driver pixels reduced the same way "
                        "(bnnflow.datasets.quantize_pixels)")
    p.add_argument("--variant", help="binaryconnect: det|stoch; xnor: xnor|bwn")
    p.add_argument("--wbits", type=_int, help="weight bits (dorefa, wage)")
    p.add_argument("--abits", type=_int, help="activation bits (dorefa, wage)")
    p.add_argument("--gbits", type=_int, help="gradient bits (dorefa, wage)")
    p.add_argument("--ebits", type=_int, help="error bits (wage)")
    p.add_argument("--bn", choices=("standard", "shift"), help="BatchNorm kind (default standard)")
    p.add_argument("--optim", choices=("adam", "shift-adamax", "sgd", "wage-sgd"),
                   help="optimizer (default adam; wage-sgd for wage)")
    p.add_argument("--loss", choices=("ce", "sqhinge", "sse"), help="loss: cross-entropy, squared hinge, SSE")
    p.add_argument("--lr-scale", dest="lr_scale", choices=("none", "glorot"),
                   help="per-layer LR scaling of binary weights (default glorot for binaryconnect)")
    p.add_argument("--schedule", choices=("cosine", "pow2"), help="LR schedule (default cosine; pow2 for wage)")
    p.add_argument("--first-layer", dest="first_layer", choices=("real", "quant"),
                   help="xnor/dorefa: keep the first layer real (default) or quantize it")
    p.add_argument("--last-layer", dest="last_layer", choices=("real", "quant"),
                   help="xnor/dorefa: keep the last layer real (default) or quantize it")
    p.add_argument("--seed", type=_seed, default=0, help="seed for initialisation and batch order")
    p.add_argument("--split-seed", type=_seed, default=0, help="seed of the stratified train/test split (digits)")
    p.add_argument("--out", required=True, type=_path, help="run folder to write, e.g. runs/demo")
    p.add_argument("--plot", action="store_true", help="also save OUT/curves.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar or model summary")
    _add_debug(p, default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("plot", help="save a run's training curves as a PNG",
                       description="Plots loss and accuracy per epoch from RUN/metrics.json. Needs "
                                   "matplotlib (the 'train' extra).")
    p.add_argument("run", type=_path, help="training run folder")
    p.add_argument("--out", type=_path, help="PNG file to write (default RUN/curves.png)")
    _add_debug(p, default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("export", help="fold, pack and write the hardware artifact of a run",
                       description="Writes RUN/export/: manifest.json, packed weights, integer thresholds, "
                                   "RTL memory files + generated top, HLS header, golden test vectors "
                                   "(format: docs/ARTIFACT.md). Needs the 'train' extra: torch reads the "
                                   "trained model.")
    p.add_argument("run", type=_path, help="training run folder")
    p.add_argument("--folding", type=_path, help='JSON file {"layers": [{"pe": P, "simd": S}, ...]}; default: chosen automatically')
    p.add_argument("--out", type=_path, help="artifact folder (default RUN/export)")
    p.add_argument("--abits", type=_int, help="bits of the activation codes the export calibrates for real "
                   "activations (BinaryConnect's hidden layers, XNOR-Net's input to its real last layer, BWN's "
                   "signed inputs): 2..8, default 8. Methods whose activations are already quantized (bnn, "
                   "dorefa, wage) ignore it (docs/DEPLOY.md)")
    p.add_argument("--generate", type=_generate_list, default=("rtl", "hls"),
                   help="consumers to generate files for: rtl, hls or rtl,hls (default). The HLS engine "
                        "limits every stream word (SIMD x input bits, PE x output bits) to 4096 bits; "
                        "`--generate rtl` exports foldings beyond that for the Verilog engine alone; "
                        "`--generate none` writes the artifact and golden vectors only")
    _add_debug(p, default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("verify", help="run the test images through each level and compare with torch",
                       description="Prints accuracy and agreement with the torch model per level; exits 1 on "
                                   "any mismatch. Levels: golden (numpy integer model), rtl (cocotb simulation "
                                   "of the generated Verilog), hls (g++ C-simulation of the HLS engines). "
                                   "Needs the 'train' extra (every level is compared with the trained torch "
                                   "model); rtl also the 'sim' extra, board-sim the 'sim' and 'board' "
                                   "extras. Without torch (on a "
                                   "board), BnnDriver(EXPORT, backend=...).check_vectors() compares a "
                                   "backend with the golden scores stored in the export.")
    p.add_argument("run", type=_path, help="training run folder (exported)")
    p.add_argument("--against", default="golden",
                   help="comma-separated levels: golden, rtl, hls, board-sim (the PYNQ driver's board path "
                        "on a simulated pynq.Device whose accelerator is the generated Verilog "
                        "bnnflow_accel, co-simulated: registers, parameter load, DMA beats); default golden")
    p.add_argument("--sim", choices=("verilator", "icarus"), default="verilator", help="RTL simulator")
    p.add_argument("--limit", type=_positive_int, help="use only the first N test images")
    p.add_argument("--layer-cycles", action="store_true",
                   help="also simulate each layer alone on --sim (one RTL build per layer) with the inputs it "
                        "sees in the network, and print its measured cycles per image against NF*SF*vectors "
                        "(a conv layer's vectors are its output pixels); a layer more than 5%% off, or whose "
                        "outputs differ from the golden model's, fails the verify")
    _add_debug(p, default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_verify)

    from .host import run_cmd   # numpy + bnnflow.host only: no torch, pynq or cocotb

    p = sub.add_parser("run", help=run_cmd.HELP, description=run_cmd.DESCRIPTION)
    run_cmd.add_arguments(p)
    _add_debug(p, default=argparse.SUPPRESS)
    p.set_defaults(func=run_cmd.main)

    # QONNX interop (docs/INTEROP.md): the modules import qonnx / brevitas only
    # when a command runs, so the parser builds without the `interop` extra.
    from . import qonnx_export, qonnx_import

    for name, module in (("qonnx", qonnx_export), ("import-qonnx", qonnx_import)):
        p = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION)
        module.add_arguments(p)
        _add_debug(p, default=argparse.SUPPRESS)
        p.set_defaults(func=module.main)

    from .vivado import ACCEL_IPS, BOARDS

    p = sub.add_parser("bitstream", help="build the PYNQ overlay (.bit + .hwh) of an export with Vivado",
                       description="Prepares RUN/<name>.build/params.tcl for vivado/build_bitstream.tcl (a block "
                                   "design with the board's processing system, an AXI DMA and the accelerator) "
                                   "and runs Vivado, which writes <name>.bit, <name>.hwh and "
                                   "<name>.signature.json beside the export, <name> = bnnflow-BOARD-ENGINE. "
                                   "Needs Vivado 2022.1..2024.2 on PATH (and Vitis HLS for --engine hls "
                                   "without --hls-ip). See docs/DRIVER.md, 'Building the bitstream'.")
    p.add_argument("run", type=_path, help="training run folder (with RUN/export) or an export folder")
    p.add_argument("--board", choices=sorted(BOARDS), default="pynq-z2", help="target board (default pynq-z2)")
    p.add_argument("--engine", choices=sorted(ACCEL_IPS), default="rtl",
                   help="the accelerator: rtl (the generated Verilog, packaged as an IP; default) or hls "
                        "(the Vitis HLS IP)")
    p.add_argument("--hls-ip", type=_path, help="--engine hls: the IP folder hls/run_hls.tcl exported "
                                                "(default: run Vitis HLS in the build folder first)")
    p.add_argument("--out", type=_path, help="folder for the .bit/.hwh (default: beside the export)")
    p.add_argument("--build", type=_path, help="Vivado's working folder (default OUT/<name>.build)")
    p.add_argument("--prepare-only", action="store_true",
                   help="write the build folder and print the Vivado command instead of running it")
    _add_debug(p, default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_bitstream)

    # -- fold and report (bnnflow.fold, bnnflow.report; resource model: bnnflow.costs) --
    from .costs import DEVICES, PLATFORM_ALLOWANCE
    from .fold import MODEL_MARGIN

    def _device(text: str) -> str:
        if text not in DEVICES:
            known = ", ".join(f"{d.name} ({d.boards})" for d in DEVICES.values())
            raise argparse.ArgumentTypeError(f"unknown device {text!r}; known devices: {known}")
        return text

    def _default_out(run: str, name: str) -> Path:
        """RUN/<name>, or beside an export folder (re-exporting replaces the export folder)."""
        path = Path(run)
        return (path.parent if (path / "manifest.json").is_file() else path) / name

    def cmd_fold(args: argparse.Namespace) -> int:
        from . import fold as fl
        from .costs import device

        layers, what = fl.network_layers(args.run)
        result = fl.fold(layers, device(args.device), args.clock, target_fps=args.target_fps,
                         max_lut=args.max_lut, hls="hls" in args.generate)
        out = Path(args.out) if args.out else _default_out(args.run, "folding.json")
        _check_out_file(out)
        fl.write_folding(result, out)
        print(f"{what}: folded for {result.device.name} ({result.device.boards}) at {args.clock:g} MHz, "
              f"{'target ' + format(args.target_fps, ',g') + ' images/s' if args.target_fps else 'fastest that fits'}")
        print(fl.describe(result))
        generate = "" if "hls" in args.generate else " --generate rtl"
        print(f"wrote {out}; export with: bnnflow export RUN --folding {out}{generate}")
        return 0

    def _check_out_file(path: Path) -> None:
        if path.is_dir():
            raise ValueError(f"--out {path}: is a folder, expected a JSON file name")

    def cmd_report(args: argparse.Namespace) -> int:
        from . import report as rp
        from .costs import device

        if args.whole and args.no_yosys:
            raise ValueError("--whole runs yosys: it cannot go with --no-yosys")
        rep = rp.build_report(args.run, device(args.device), args.clock, use_yosys=not args.no_yosys,
                              log=lambda m: print(m, file=sys.stderr, flush=True), whole=args.whole)
        out = Path(args.out) if args.out else _default_out(str(rep.export), "report")
        _check_out_folder(str(out))
        paths = rp.write_report(rep, out)
        print(rp.render(rep), end="")
        chart = paths["png"] or "no chart: matplotlib (the 'train' extra) is not installed"
        print(f"\nwrote {paths['md']}, {paths['json']}; chart: {chart}")
        return 0

    a = PLATFORM_ALLOWANCE
    p = sub.add_parser("fold", help="choose PE/SIMD per layer for a device, clock and target",
                       description="Chooses each layer's PE (neurons in parallel) and SIMD (inputs per PE and "
                                   "cycle) so that every layer's NF*SF cycles per image (times a convolution's "
                                   "output pixels) is close to the slowest "
                                   "layer's, at the least estimated cost, within the device: with --target-fps the "
                                   "cheapest folding reaching that rate at --clock; otherwise (or with --max-lut) "
                                   "the fastest folding that fits. Costs come from a unit-cost model measured "
                                   "with yosys (bnnflow/cost_table.py; `python -m bnnflow.costs --check` prints "
                                   "its error), so no yosys is needed here. The default budget is the device "
                                   f"minus {a.lut:,.0f} LUT, {a.ff:,.0f} FF and {a.bram36:g} BRAM36 for the AXI "
                                   "DMA and interconnect of the block design, and of the LUTs left "
                                   f"{100 * MODEL_MARGIN:.0f}% are kept free for the model's error. LUT figures "
                                   "are yosys 7-series estimates (LUT RAM included), not Vivado results. "
                                   "Writes the folding JSON that "
                                   "`bnnflow export --folding` reads. Reads only RUN/config.json (or an export's "
                                   "manifest.json; conv nets and non-bnn methods are read through RUN/export): "
                                   "no torch needed.")
    p.add_argument("run", type=_path, help="training run folder (config.json) or an export folder")
    p.add_argument("--device", type=_device, default="xc7z020",
                   help="FPGA: " + ", ".join(f"{d.name} ({d.boards}; {d.lut:,} LUT, {d.bram36} BRAM36)"
                                             for d in DEVICES.values()) + "; default xc7z020")
    p.add_argument("--clock", type=_positive_float, default=100.0, help="fabric clock in MHz (default 100)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--target-fps", type=_positive_float,
                        help="images per second to reach at --clock: the cheapest folding with at most "
                             "clock/fps cycles per image (error if it does not fit the device)")
    target.add_argument("--max-lut", type=_positive_int,
                        help="LUTs the accelerator may use (layers, repackers, shell) by the model's estimate; "
                             "default: the device's LUTs minus the DMA allowance and the model margin. The "
                             "fastest folding within it is chosen")
    p.add_argument("--generate", type=_generate_list, default=("rtl", "hls"),
                   help="what the export will generate (default rtl,hls): with hls, stream words stay "
                        "within the HLS engine's 4096-bit limit; `rtl` lifts that limit")
    p.add_argument("--out", type=_path, help="folding JSON to write (default RUN/folding.json; for an export "
                                             "folder, folding.json beside it)")
    _add_debug(p, default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_fold)

    p = sub.add_parser("report", help="cycles, frame rate and resource estimates of an export",
                       description="Per layer: kind, shape, PE, SIMD, NF*SF cycles, weight bits and LUT/FF/BRAM36/"
                                   "DSP estimates, plus the repackers and the accelerator shell; the pipeline's "
                                   "images/s at --clock, utilization of --device, weight bits against its "
                                   "block RAM, and BNN-PYNQ's published LFC/CNV rows beside it. Estimates come "
                                   "from yosys (synth_xilinx -family xc7, each unit of the export's generated "
                                   "RTL synthesized apart and summed: minutes for a big network) or, with "
                                   "--no-yosys or without yosys, from the unit-cost model; always labelled "
                                   "estimates, not Vivado results. Writes report.md, report.json and report.png "
                                   "(the chart needs matplotlib).")
    p.add_argument("run", type=_path, help="export folder, or a run folder with RUN/export")
    p.add_argument("--device", type=_device, default="xc7z020", help="FPGA to compare with (default xc7z020; "
                                                                      "see `bnnflow fold --help`)")
    p.add_argument("--clock", type=_positive_float, default=100.0, help="fabric clock in MHz (default 100)")
    p.add_argument("--out", type=_path, help="folder for report.md/.json/.png (default RUN/report, or beside "
                                             "an export folder)")
    p.add_argument("--no-yosys", action="store_true", help="use the unit-cost model instead of running yosys")
    p.add_argument("--whole", action="store_true",
                   help="also synthesize the whole accelerator, flattened, in one yosys run, and use it as the "
                        "total (LFC: about 8 minutes and 1.6 GB; the unit-by-unit sum is within about 10%%)")
    _add_debug(p, default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_report)
    return parser


#: Error types a user can cause (bad options, files, data, missing tools); anything else is a bug.
USER_ERRORS = (ValueError, OSError, RuntimeError, ImportError, MemoryError)


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else f"{exc.filename}"
        return f"{target}: {exc.strerror}"
    if isinstance(exc, MissingExtraError):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        return missing_message(top, EXTRA_OF.get(top))
    if isinstance(exc, MemoryError):
        return "out of memory (try smaller --hidden / --batch-size, or --limit)"
    return str(exc).strip() or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one command. Usage errors exit 2 (one line, from argparse); errors while running return 2
    with one line ``bnnflow COMMAND: error: ...``; a mismatch in ``verify`` returns 1. ``--debug`` or
    BNNFLOW_DEBUG=1 re-raises instead, to show the traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("BNNFLOW_DEBUG", "").strip() not in ("", "0")
    prefix = f"bnnflow {args.command}: error:"
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"bnnflow {args.command}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        if debug:
            raise
        lines = _message(exc).splitlines()
        if len(lines) > 1:          # a tool's log (compiler, simulator): the detail first, the error line last
            print("\n".join(lines[1:]), file=sys.stderr)
            print(f"{prefix} {lines[0].rstrip(':')} (tool output above)", file=sys.stderr)
        else:
            print(f"{prefix} {lines[0]}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug: still one line, the traceback behind --debug
        if debug:
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"{prefix} internal error ({type(exc).__name__}: {first}); please report it with the "
              f"traceback from `bnnflow --debug {args.command} ...`", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
