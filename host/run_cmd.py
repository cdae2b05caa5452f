"""``bnnflow run``: an export's test images through the driver on one backend.

Why a command: on a board there is no torch (so no ``bnnflow verify``), and
the first thing to know about a bitstream is whether it classifies like the
golden model and how fast. ``run`` classifies the test split the export
stores (``bnnflow.writer.read_vectors``) with :class:`~bnnflow.host.BnnDriver`
and reports

- accuracy against the labels (and the golden model's, for reference);
- agreement with the golden model computed here: predicted classes and
  whole integer score rows, with the first differing image named;
- throughput (``BnnDriver.throughput_test``): the accelerator alone and end to
  end, plus the host's packing on the board backends, and for ``rtl`` the
  measured cycles per image.

It needs numpy only (plus pynq for the board backends, the simulators for
rtl). :func:`add_arguments` and :func:`main` plug it into an argparse CLI.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bnnflow import artifact as art
from bnnflow.argtypes import path_text, positive_int
from bnnflow.golden import GoldenModel, argmax_lowest
from bnnflow.writer import read_vectors

from .backend_board import BoardError, BoardNotFoundError, import_pynq, probe_board, resolve_bitfile
from .driver import BACKENDS, BnnDriver

SIMULATORS = ("verilator", "icarus")

HELP = "classify an export's test images on a backend: accuracy, agreement with golden, throughput"
DESCRIPTION = (
    "Runs the test images stored in the export (the test split written by `bnnflow export`) through the "
    "driver (bnnflow.host.BnnDriver) on one backend and prints the accuracy, the agreement with the golden "
    "model (predicted classes and integer scores, computed here) and the throughput (images/s of the "
    "accelerator alone and end to end). Exits 0 when every score equals the golden model's, 1 otherwise. "
    "Needs numpy only: it runs on a PYNQ board without torch; --backend rtl needs the 'sim' extra, board-sim "
    "the 'board' extra (pynq).")


def resolve_export(path: str | Path) -> Path:
    """The export folder: ``path`` itself if it holds a manifest, else a training run's ``path/export``."""
    path = Path(path)
    if (path / art.MANIFEST).is_file():
        return path
    if (path / "export").is_dir() or (path / "config.json").is_file():
        return path / "export"  # a run: art.load names what is missing there
    raise FileNotFoundError(f"{path}: neither an export folder (no {art.MANIFEST}) nor a training run with one "
                            f"({path / 'export' / art.MANIFEST}); run `bnnflow export RUN` first")


def board_preflight(artifact: art.Artifact, bitfile: str | Path | None) -> Path:
    """The bitstream to load, or one :class:`BoardNotFoundError` listing everything the board backend lacks here.

    Why: on a host the driver would stop at the first missing piece (pynq);
    the user should learn at once that the board and the bitstream are
    missing too.
    """
    missing = []
    try:
        pynq = import_pynq()
    except BoardNotFoundError as exc:
        missing.append(f"pynq cannot be imported ({exc.__cause__}): run on a PYNQ board, inside its Python "
                       "environment (docs/DRIVER.md, Installing on the board)")
    else:
        try:
            probe_board(pynq)
        except BoardNotFoundError as exc:
            missing.append(str(exc).split("; use backend=")[0])
    found = None
    try:
        found = resolve_bitfile(artifact, bitfile)
    except BoardError as exc:
        missing.append(str(exc).replace("pass bitfile='path/to/bnnflow.bit'", "pass --bitfile path/to/bnnflow.bit"))
    if missing:
        raise BoardNotFoundError("--backend board cannot run here: " + "; ".join(missing)
                                 + ". Without a board, --backend golden, rtl or board-sim run the same images")
    return found


def _positive_or_none(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r}: expected a positive integer or None")
    return int(value)


def run(run_dir_or_export: str | Path, backend: str = "golden", bitfile: str | Path | None = None,
        limit: int | None = None, sim: str = "verilator", batch: int | None = None,
        echo: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Classify the export's stored test images on ``backend``; print and return what was found.

    ``run_dir_or_export``: an export folder or a training run (its
    ``export/``). ``bitfile``: the bitstream for ``board`` (default: the
    manifest's ``board.bitfile``, else the bnnflow-*.bit beside the export). ``limit``: only the first N test images.
    ``sim``: the simulator of ``rtl``. ``batch``: images to time in the
    throughput test (the test images repeated or cut; default: each once).
    ``echo`` prints the report lines (None: silent).

    Returns ``export``, ``backend``, ``images``, ``accuracy`` and
    ``golden_accuracy`` (fractions against the labels), ``class_agreement``
    (fraction of predictions equal to the golden model's),
    ``score_mismatches`` (images whose integer scores differ from the golden
    model's in any class), ``first_difference`` (a sentence, or None),
    ``throughput`` (:meth:`BnnDriver.throughput_test`'s numbers, without its
    BatchTiming) and ``cycles_per_image`` (rtl; else None).
    """
    from bnnflow.verify import first_difference

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    limit = _positive_or_none("limit", limit)
    batch = _positive_or_none("batch", batch)
    if sim not in SIMULATORS:
        raise ValueError(f"unknown simulator {sim!r}; choose one of {', '.join(SIMULATORS)}")
    if bitfile is not None and backend != "board":
        raise ValueError(f"a bitfile ({bitfile}) is for --backend board; backend {backend!r} has none")
    artifact = art.load(resolve_export(run_dir_or_export))
    options: dict[str, Any] = {}
    if backend == "board":
        options["bitfile"] = board_preflight(artifact, bitfile)  # fails fast, naming every missing piece
    elif backend == "rtl":
        options["sim"] = sim
    images, labels, _ = read_vectors(artifact)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    n = int(images.shape[0])
    if n == 0:
        raise ValueError(f"{artifact.root}: the export stores no test images (vectors.count is 0)")
    golden = GoldenModel(artifact).scores(images)
    with BnnDriver(artifact, backend=backend, **options) as driver:
        scores = driver.scores(images)
        timing = driver.last_timing
        # the board backends allocate their DMA buffers in the untimed warm-up run
        throughput = driver.throughput_test(images, batch=batch, warmup=backend in ("board", "board-sim"))
    predicted, golden_predicted = argmax_lowest(scores), argmax_lowest(golden)
    result: dict[str, Any] = {
        "export": str(artifact.root),
        "backend": backend,
        "images": n,
        "accuracy": float(np.mean(predicted == labels)),
        "golden_accuracy": float(np.mean(golden_predicted == labels)),
        "class_agreement": float(np.mean(predicted == golden_predicted)),
        "score_mismatches": int(np.any(scores != golden, axis=1).sum()),
        "first_difference": first_difference(scores, golden, backend, "golden"),
        "throughput": {k: v for k, v in throughput.items() if k not in ("timing", "score_mismatches")},
        "cycles_per_image": timing.cycles_per_image,
    }
    if echo is not None:
        for line in report_lines(result):
            echo(line)
    return result


def report_lines(result: dict[str, Any]) -> list[str]:
    """The printed report of :func:`run`'s result."""
    from bnnflow.vivado import FCLK_MHZ

    n, t = result["images"], result["throughput"]
    lines = [
        f"bnnflow run: {result['export']} on {result['backend']}, {n} test images",
        f"  accuracy             {result['accuracy'] * 100:.2f}%  "
        f"(golden model: {result['golden_accuracy'] * 100:.2f}%)",
        f"  agreement w/ golden  {result['class_agreement'] * 100:.2f}% of predicted classes; integer scores equal "
        f"on {n - result['score_mismatches']} of {n} images",
        f"  throughput           accelerator {t['accelerator_images_per_s']:,.0f} images/s "
        f"({t['accelerator_latency_s']:.4f} s for {t['images']} images); end to end "
        f"{t['end_to_end_images_per_s']:,.0f} images/s ({t['end_to_end_latency_s']:.4f} s)",
    ]
    if t.get("pack_seconds") is not None:
        lines.append(f"                       host packing {t['pack_seconds']:.4f} s, unpacking "
                     f"{t['unpack_seconds']:.4f} s of the end-to-end time")
    if result["backend"] == "rtl":
        lines.append("                       (rtl: simulation speed)")
        cycles = result.get("cycles_per_image")
        if cycles:
            lines.append(f"  cycles per image     {cycles:g} measured in simulation: "
                         f"{FCLK_MHZ * 1e6 / cycles:,.0f} images/s at {FCLK_MHZ} MHz")
    if result["score_mismatches"]:
        lines.append(f"FAIL: {result['first_difference']}")
    else:
        lines.append("PASS: every integer score equals the golden model's")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bnnflow run`` options, on ``parser`` (a subcommand's parser)."""
    parser.add_argument("path", metavar="RUN_OR_EXPORT", type=path_text,
                        help="an export folder (with manifest.json) or a training run whose export/ to use")
    parser.add_argument("--backend", choices=BACKENDS, default="golden",
                        help="what computes the scores: golden (numpy integer model), rtl (simulation of the "
                             "generated Verilog), board (the FPGA of a PYNQ board: needs pynq, the board and a "
                             "bitstream), board-sim (the board driver against a simulated board); default golden")
    parser.add_argument("--bitfile", type=path_text, metavar="BIT",
                        help="--backend board: the bitstream (.bit) to load, with its .hwh (and the build's "
                             ".signature.json) beside it; default: the manifest's board.bitfile, else the one bnnflow-*.bit beside the export (what `make bitstream` writes)")
    parser.add_argument("--limit", type=positive_int, metavar="N", help="use only the first N test images")
    parser.add_argument("--sim", choices=SIMULATORS, default="verilator",
                        help="--backend rtl: the simulator (default verilator)")
    parser.add_argument("--batch", type=positive_int, metavar="N",
                        help="images to time in the throughput test: the test images repeated or cut to N "
                             "(default: each test image once); a larger batch measures the board's steady rate")


def main(args: argparse.Namespace) -> int:
    """Run the command: 0 when every score equals the golden model's, 1 otherwise (the report says which)."""
    result = run(args.path, backend=args.backend, bitfile=args.bitfile, limit=args.limit, sim=args.sim,
                 batch=args.batch)
    return 0 if result["score_mismatches"] == 0 else 1
