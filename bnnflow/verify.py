"""``bnnflow verify``: the test images through every level, compared with torch and golden.

"torch" is the quantized torch model as deployed (:mod:`bnnflow.model.deploy`: integer dots and the
model's own modules as level functions, with the calibration constants the export stored); the
``torch-float`` row is the trained model as it evaluates in training, so the cost of deployment
(calibrated activation codes, 8-bit real layers, XNOR-Net's constant beta) shows beside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import artifact as art
from .extras import require
from .golden import GoldenModel, argmax_lowest
from .writer import read_vectors

if TYPE_CHECKING:
    import torch

#: Every level is compared with the trained torch model, so verify needs torch (the ``train`` extra).
PURPOSE = "bnnflow verify (compares every level with the trained torch model)"

LEVELS = ("golden", "rtl", "hls", "board-sim")


@dataclass
class LevelResult:
    level: str
    scores: np.ndarray
    seconds: float
    cycles_per_image: float | None = None
    model_cycles: int | None = None


def torch_scores(run_dir: Path, images: np.ndarray) -> np.ndarray:
    """The torch reference's integer scores (N, C) of ``images`` for the run's model (needs the ``train`` extra).

    The reference is the quantized torch model as deployed (:mod:`bnnflow.model.deploy`), rebuilt with the
    calibration constants stored in the run's export (``RUN/export``), so it is exactly what was exported.
    """
    require("torch", "train", PURPOSE)
    from .model.train import load_run

    config, model = load_run(run_dir)
    export = Path(run_dir) / "export"
    constants = art.load(export).network.get("deployment") if (export / art.MANIFEST).is_file() else None
    return _model_scores(model, Path(run_dir), images, config, constants)


def reference_network(model: torch.nn.Module, run: Path, config: dict, constants: dict | None):
    """The deployed network (:class:`~bnnflow.model.deploy.DeployedNet`) verify compares with.

    ``constants`` are the export's ``network.deployment`` (calibrated activation
    scales, XNOR-Net's beta); a model that needs them and has none is refused
    with a message that says to export again.
    """
    from .export import deployed_network
    from .model.deploy import DeployError

    try:
        return deployed_network(model, config, constants=constants)
    except DeployError as exc:
        raise ValueError(f"{run}: {exc}") from None


def _model_scores(model: torch.nn.Module, run: Path, images: np.ndarray, config: dict,
                  constants: dict | None = None) -> np.ndarray:
    require("torch", "train", PURPOSE)
    return reference_network(model, run, config, constants).scores(images)


def float_predictions(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    """Predictions of the trained model as it evaluates in training (real activations, its own scales).

    Printed beside the deployed reference so the cost of deployment (calibrated
    activation codes, 8-bit real layers, XNOR-Net's constant beta) is visible.
    """
    torch = require("torch", "train", PURPOSE)
    with torch.no_grad():
        return model(torch.from_numpy(images.astype(np.float32))).argmax(1).numpy()


def first_difference(scores: np.ndarray, reference: np.ndarray, name: str, ref_name: str) -> str | None:
    """None when equal; else one sentence naming the first differing image and class and both values."""
    if scores.shape != reference.shape:
        return f"{name} scores have shape {scores.shape}, {ref_name} scores {reference.shape}"
    diff = scores != reference
    if not diff.any():
        return None
    image, cls = (int(v) for v in np.argwhere(diff)[0])
    images = int(diff.any(axis=1).sum())
    return (f"{name} scores differ from {ref_name} at image {image}, class {cls}: {name} {int(scores[image, cls])}, "
            f"{ref_name} {int(reference[image, cls])} ({images} of {len(scores)} images differ)")


def run_level(level: str, artifact: art.Artifact, images: np.ndarray, sim: str) -> LevelResult:
    started = time.perf_counter()
    if level == "golden":
        return LevelResult(level, GoldenModel(artifact).scores(images), time.perf_counter() - started)
    if level == "rtl":
        # Verilator: the compiled bulk harness (no Python per clock cycle); Icarus: the cocotb testbench
        if sim == "verilator":
            from .sim.bulk import run_bulk

            result = run_bulk(artifact, images)
        else:
            from .sim.network import run_network

            result = run_network(artifact, images, sim=sim)
        return LevelResult(f"rtl ({sim})", np.asarray(result.scores), time.perf_counter() - started,
                           result.cycles_per_image, result.model_cycles)
    if level == "hls":
        from .hlsflow import run_csim

        result = run_csim(artifact, limit=len(images))
        return LevelResult("hls (csim)", np.asarray(result.scores), time.perf_counter() - started)
    if level == "board-sim":
        # The PYNQ board driver (Overlay, DefaultIP registers, allocate, AXI DMA) against a
        # simulated pynq.Device whose accelerator is the generated bnnflow_accel, co-simulated:
        # the signature check, the register protocol and the DMA beats all reach the RTL.
        from .host import BnnDriver
        from .sim.board_cosim import RtlCosim

        with BnnDriver(artifact, backend="board-sim", engine=RtlCosim(sim=sim)) as driver:
            scores = driver.scores(images)
        return LevelResult(f"board-sim ({sim})", scores, time.perf_counter() - started)
    raise ValueError(f"unknown level {level!r}; choose from {', '.join(LEVELS)}")


def check_levels(levels) -> list[str]:
    """The requested levels, in order and without repeats; ValueError for none or an unknown one."""
    if isinstance(levels, str):
        levels = levels.split(",")
    names = list(dict.fromkeys(str(level).strip() for level in levels if str(level).strip()))
    if not names:
        raise ValueError(f"--against names no level; choose one or more of {', '.join(LEVELS)}")
    for level in names:
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; choose from {', '.join(LEVELS)}")
    return names


def verify_run(run_dir: str | Path, levels: list[str], sim: str = "verilator", limit: int | None = None,
               layer_cycles: bool = False) -> int:
    """Print the agreement table; return 0 when every level agrees with torch and golden, else 1.

    "Agrees" means equal integer scores (not only equal predictions): golden
    and every level are compared with the deployed torch reference's integer
    scores and with golden (the ``torch-float`` row, the trained model's own
    predictions, is shown for its accuracy and is not required to agree),
    and the golden model with the scores stored at export. Each difference is
    printed as one line naming the first differing image and class and both
    values. With ``layer_cycles``, each layer is also simulated alone on
    ``sim`` (:mod:`bnnflow.layer_cycles`) and its measured cycles per image
    printed against NF*SF*vectors; a layer more than 5% off, or whose
    outputs differ from the golden model's, is an error too. Raises ValueError
    for no level, an unknown level or a ``limit`` that is not a positive integer.
    """
    levels = check_levels(levels)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"--limit must be a positive integer, got {limit!r}")
    run = Path(run_dir)
    if not (run / "config.json").is_file():
        raise FileNotFoundError(f"{run / 'config.json'}: not a training run (run `bnnflow train ... --out {run}` "
                                f"and `bnnflow export {run}` first)")
    from .model.train import load_run

    config, model = load_run(run)
    imported = config.get("imported")
    if isinstance(imported, dict):
        print(f"reference: the model imported from {imported.get('file')} (sha256 "
              f"{str(imported.get('sha256', ''))[:12]}, {imported.get('producer', '?')}) by `bnnflow import-qonnx`; "
              "torch-float is its rebuilt forward pass, torch the same model as deployed")
    artifact = art.load(run / "export")
    for key in ("input_features", "num_classes"):
        if config[key] != getattr(artifact, key):
            raise ValueError(f"{artifact.root}: exported from another model ({key} {getattr(artifact, key)}, "
                             f"the run's config.json has {config[key]}): run `bnnflow export {run}` again")
    images, labels, stored = read_vectors(artifact)
    if limit is not None:
        images, labels, stored = images[:limit], labels[:limit], stored[:limit]
    if len(images) == 0:
        raise ValueError(f"{artifact.root}: the export holds no test images to verify")
    reference = _model_scores(model, run, images, config, artifact.network.get("deployment"))
    golden = GoldenModel(artifact).scores(images)
    ref_pred = argmax_lowest(reference)
    float_pred = float_predictions(model, images)
    errors = []
    stale = first_difference(golden, stored, "golden", f"the scores stored in {artifact.root}/vectors")
    if stale:
        errors.append(stale)
    torch_vs_golden = first_difference(golden, reference, "golden", "torch")
    if torch_vs_golden:
        errors.append(torch_vs_golden)
    rows = [("torch-float", len(images), float((float_pred == labels).mean()), float((float_pred == ref_pred).mean()),
             "-", "-", "-"),
            ("torch", len(images), float((ref_pred == labels).mean()), 1.0,
             "NO" if torch_vs_golden else "yes", "-", "-")]
    for level in levels:
        result = run_level(level, artifact, images, sim)
        scores = np.asarray(result.scores)
        pred = argmax_lowest(scores) if scores.shape == reference.shape else np.full(len(images), -1)
        agree = float((pred == ref_pred).mean())
        exact = scores.shape == golden.shape and np.array_equal(scores, golden)
        if level != "golden":     # golden vs torch is checked above; equal to golden = equal to torch then
            diff = first_difference(scores, golden, result.level, "golden")
            if diff:
                errors.append(diff)
        cycles = "-" if result.cycles_per_image is None else f"{result.cycles_per_image:.1f} / {result.model_cycles}"
        rows.append((result.level, len(images), float((pred == labels).mean()), agree,
                     "yes" if exact else "NO", cycles, f"{result.seconds:.1f}"))
    header = ("level", "images", "accuracy", "agree w/ torch", "scores == golden", "cycles/img (meas / model)", "time s")
    widths = [max(len(str(h)), *(len(_fmt(r[i])) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(_fmt(v).ljust(w) for v, w in zip(r, widths)))
    if layer_cycles:
        errors += _print_layer_cycles(artifact, images, sim)
    for error in errors:
        print(f"error: {error}")
    ok = not errors
    print("PASS: every level matches torch and the golden model bit for bit" if ok
          else "FAIL: integer scores differ (first difference above)")
    return 0 if ok else 1


def _print_layer_cycles(artifact: art.Artifact, images: np.ndarray, sim: str) -> list[str]:
    """Print the per-layer cycle table (each layer simulated alone); return its errors as sentences."""
    from . import layer_cycles as lc

    rows = lc.measure_layer_cycles(artifact, images[:lc.DEFAULT_IMAGES], sim=sim)
    print(lc.format_table(rows, sim))
    errors = []
    for r in rows:
        if not r.outputs_equal_golden:
            errors.append(f"layer {r.index} simulated alone on {sim}: its outputs differ from the golden model's")
        if not r.within_tolerance:
            errors.append(f"layer {r.index} simulated alone on {sim}: {r.measured:,.1f} cycles per image, "
                          f"{r.ratio:.3f}x its NF*SF*vectors model ({r.model:,}), more than "
                          f"{lc.TOLERANCE:.0%} apart")
    return errors


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value * 100:.2f}%"
    return str(value)
