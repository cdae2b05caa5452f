"""The host driver: classify images with an exported network on any backend.

``BnnDriver(export_dir, backend)`` loads the artifact (so a broken artifact
fails with the artifact's own error), checks every batch against the
network's input shape and bit width, runs it on the chosen backend and turns
scores into labels with the one prediction rule of bnnflow (argmax, ties to
the lowest index). Backends:

- ``golden``: the numpy integer model (``bnnflow.golden``), always available;
- ``rtl``: the generated Verilog, simulated (``bnnflow.sim.network``);
- ``board``: the FPGA of a PYNQ board (``pynq``);
- ``board-sim``: the board backend's real PYNQ code path against a simulated
  ``pynq.Device`` (``bnnflow.host.simdevice``), for testing without a board.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from bnnflow import artifact as art
from bnnflow.golden import argmax_lowest

from .result import BatchTiming

BACKENDS = ("golden", "rtl", "board", "board-sim")


def _make_backend(name: str, artifact: art.Artifact, options: dict[str, Any]):
    if name == "golden":
        from .backend_golden import GoldenBackend

        backend = GoldenBackend(artifact, **options)
    elif name == "rtl":
        from .backend_rtl import RtlBackend

        backend = RtlBackend(artifact, **options)
    elif name == "board":
        from .backend_board import BoardBackend

        backend = BoardBackend(artifact, **options)
    elif name == "board-sim":
        from .simdevice import SimulatedBoardBackend

        backend = SimulatedBoardBackend(artifact, **options)
    else:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return backend


class BnnDriver:
    """Run an exported binarized network on images, on one backend.

    ``options`` go to the backend: ``sim="icarus"`` and ``run_network``
    options such as ``check=True`` for rtl; ``bitfile=``,
    ``overlay=``, ``accel_name=``, ``dma_name=``, ``timeout_s=``,
    ``max_batch=`` for board (docs/DRIVER.md).
    """

    def __init__(self, export_dir: str | Path | art.Artifact, backend: str = "golden", **options: Any):
        self.artifact = export_dir if isinstance(export_dir, art.Artifact) else art.load(export_dir)
        self.backend_name = backend
        self.backend = _make_backend(backend, self.artifact, options)
        self.last_timing: BatchTiming | None = None

    # -- network facts -----------------------------------------------------------
    @property
    def input_features(self) -> int:
        return self.artifact.input_features

    @property
    def input_shape(self) -> tuple[int, ...]:
        shape = self.artifact.network.get("input_shape") or [self.input_features]
        shape = tuple(int(s) for s in shape)
        return shape if int(np.prod(shape)) == self.input_features else (self.input_features,)

    @property
    def input_bits(self) -> int:
        return self.artifact.input_bits

    @property
    def num_classes(self) -> int:
        return self.artifact.num_classes

    # -- input checking ----------------------------------------------------------
    def _expected(self) -> str:
        flat = f"(N, {self.input_features})"
        if self.input_shape != (self.input_features,):
            return f"{flat} or (N, {', '.join(map(str, self.input_shape))})"
        return flat

    def check_images(self, images: Any) -> np.ndarray:
        """Validate a batch and return it as (N, F) uint8; raise ValueError/TypeError saying what is wrong."""
        arr = np.asarray(images)
        expected = self._expected()
        hi = (1 << self.input_bits) - 1
        if arr.dtype.kind not in "biu":
            raise TypeError(
                f"images must be an integer array of unsigned {self.input_bits}-bit values (0..{hi}), "
                f"got dtype {arr.dtype}; quantize them as the training data was and pass e.g. "
                "images.astype(np.uint8)")
        if arr.ndim >= 2 and arr.shape[1:] == self.input_shape:
            arr = arr.reshape(arr.shape[0], self.input_features)
        elif not (arr.ndim == 2 and arr.shape[1] == self.input_features):
            hint = ""
            if arr.shape in ((self.input_features,), self.input_shape):
                hint = "; for one image pass images[None]"
            raise ValueError(f"images must have shape {expected}, got {arr.shape}{hint}")
        if arr.size:
            lo_v, hi_v = int(arr.min()), int(arr.max())
            if lo_v < 0 or hi_v > hi:
                raise ValueError(
                    f"image values must be unsigned {self.input_bits}-bit integers in 0..{hi} "
                    f"(network input_bits={self.input_bits}), got values in {lo_v}..{hi_v}")
        return np.ascontiguousarray(arr, dtype=np.uint8)

    # -- running -------------------------------------------------------------------
    def scores(self, images: Any) -> np.ndarray:
        """(N, num_classes) int64 integer scores of a batch; records :attr:`last_timing`."""
        flat = self.check_images(images)
        start = time.perf_counter()
        result = self.backend.run(flat)
        seconds = time.perf_counter() - start
        self.last_timing = BatchTiming(
            backend=self.backend_name, images=int(flat.shape[0]), seconds=seconds,
            cycles_per_image=result.cycles_per_image, model_cycles_per_image=result.model_cycles_per_image,
            details=dict(result.details))
        return np.asarray(result.scores, dtype=np.int64)

    def classify(self, images: Any) -> np.ndarray:
        """(N,) int64 labels: argmax of the scores, ties to the lowest class index."""
        return argmax_lowest(self.scores(images)).astype(np.int64)

    def check_vectors(self, limit: int | None = None) -> dict[str, Any]:
        """Run the artifact's stored test vectors; compare with the stored golden scores.

        Returns counts of images, score mismatches (images whose scores differ
        from the golden model's in any class), label agreement with the golden
        model and accuracy against the labels. A quick bring-up check: on a
        working board ``score_mismatches`` is 0.
        """
        from bnnflow.writer import read_vectors

        images, labels, golden = read_vectors(self.artifact)
        if limit is not None:
            images, labels, golden = images[:limit], labels[:limit], golden[:limit]
        scores = self.scores(images)
        predicted = argmax_lowest(scores)
        n = int(images.shape[0])
        return {
            "backend": self.backend_name,
            "images": n,
            "score_mismatches": int(np.any(scores != golden, axis=1).sum()),
            "agreement": float(np.mean(predicted == argmax_lowest(golden))) if n else 1.0,
            "accuracy": float(np.mean(predicted == labels)) if n else 0.0,
            "timing": self.last_timing,
        }

    def close(self) -> None:
        """Release backend resources (the board's DMA buffers)."""
        self.backend.close()

    def __enter__(self) -> "BnnDriver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"BnnDriver({str(self.artifact.root)!r}, backend={self.backend_name!r}: "
                f"{self.input_features} x {self.input_bits}-bit inputs -> {self.num_classes} classes)")
