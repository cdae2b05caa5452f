"""``bnnflow verify``: the test images through every level, compared with torch and golden."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import artifact as art
from .golden import GoldenModel, argmax_lowest
from .writer import read_vectors

LEVELS = ("golden", "rtl", "hls", "board-sim")


@dataclass
class LevelResult:
    level: str
    scores: np.ndarray
    seconds: float
    cycles_per_image: float | None = None
    model_cycles: int | None = None


def torch_scores(run_dir: Path, images: np.ndarray) -> np.ndarray:
    from .model.train import load_run

    _, model = load_run(run_dir)
    with torch.no_grad():
        return model.scores(torch.from_numpy(images.astype(np.float32))).numpy().astype(np.int64)


def run_level(level: str, artifact: art.Artifact, images: np.ndarray, sim: str) -> LevelResult:
    started = time.perf_counter()
    if level == "golden":
        return LevelResult(level, GoldenModel(artifact).scores(images), time.perf_counter() - started)
    if level == "rtl":
        from .sim.network import run_network

        result = run_network(artifact, images, sim=sim)
        return LevelResult(f"rtl ({sim})", np.asarray(result.scores), time.perf_counter() - started,
                           result.cycles_per_image, result.model_cycles)
    if level == "hls":
        from .hlsflow import run_csim

        result = run_csim(artifact, limit=len(images))
        return LevelResult("hls (csim)", np.asarray(result.scores), time.perf_counter() - started)
    if level == "board-sim":
        # The PYNQ board driver (Overlay, DefaultIP registers, allocate, AXI DMA)
        # against a simulated pynq.Device whose engine is the RTL simulation.
        from .host import BnnDriver
        from .sim.network import run_network

        def rtl_engine(batch: np.ndarray) -> np.ndarray:
            return run_network(artifact, batch.astype(np.uint8), sim=sim).scores

        driver = BnnDriver(artifact, backend="board-sim", engine=rtl_engine)
        return LevelResult(f"board-sim ({sim})", driver.scores(images), time.perf_counter() - started)
    raise ValueError(f"unknown level {level!r}; choose from {', '.join(LEVELS)}")


def verify_run(run_dir: str | Path, levels: list[str], sim: str = "verilator", limit: int | None = None) -> int:
    """Print the agreement table; return 0 when every level agrees with torch and golden, else 1."""
    for level in levels:
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; choose from {', '.join(LEVELS)}")
    run = Path(run_dir)
    artifact = art.load(run / "export")
    images, labels, stored = read_vectors(artifact)
    if limit is not None:
        images, labels, stored = images[:limit], labels[:limit], stored[:limit]
    reference = torch_scores(run, images)
    golden = GoldenModel(artifact).scores(images)
    ref_pred = argmax_lowest(reference)
    rows = [("torch", len(images), float((ref_pred == labels).mean()), 1.0, "-", "-", "-")]
    ok = np.array_equal(golden, stored)
    if not ok:
        print(f"error: the golden model no longer reproduces the scores stored in {artifact.root}/vectors")
    for level in levels:
        result = run_level(level, artifact, images, sim)
        pred = argmax_lowest(result.scores)
        agree = float((pred == ref_pred).mean())
        exact = result.scores.shape == golden.shape and np.array_equal(result.scores, golden)
        ok &= exact and agree == 1.0
        cycles = "-" if result.cycles_per_image is None else f"{result.cycles_per_image:.1f} / {result.model_cycles}"
        rows.append((result.level, len(images), float((pred == labels).mean()), agree,
                     "yes" if exact else "NO", cycles, f"{result.seconds:.1f}"))
    header = ("level", "images", "accuracy", "agree w/ torch", "scores == golden", "cycles/img (meas / NF*SF)", "time s")
    widths = [max(len(str(h)), *(len(_fmt(r[i])) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(_fmt(v).ljust(w) for v, w in zip(r, widths)))
    print("PASS: every level matches torch and the golden model bit for bit" if ok else "FAIL: mismatch (see table)")
    return 0 if ok else 1


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value * 100:.2f}%"
    return str(value)
