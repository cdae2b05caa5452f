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

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bnnflow import artifact as art
from bnnflow.golden import argmax_lowest

from . import options as opt
from .result import BatchTiming

BACKENDS = ("golden", "rtl", "board", "board-sim")


def _backend_class(name: Any):
    """The class of backend ``name``; imports only what the name needs."""
    if name == "golden":
        from .backend_golden import GoldenBackend

        return GoldenBackend
    if name == "rtl":
        from .backend_rtl import RtlBackend

        return RtlBackend
    if name == "board":
        from .backend_board import BoardBackend

        return BoardBackend
    if name == "board-sim":
        from .backend_board import import_pynq

        import_pynq()  # a clear BoardNotFoundError ("needs pynq") instead of an ImportError from simdevice
        from .simdevice import SimulatedBoardBackend

        return SimulatedBoardBackend
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


def _check_backend(name: Any, options: dict[str, Any]) -> None:
    """The backend name and the names of its options (values are checked by the backend)."""
    from .backend_board import BOARD_OPTIONS, SIM_OPTIONS
    from .backend_rtl import RtlBackend

    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    accepted = {"golden": (), "rtl": RtlBackend.OPTIONS, "board": BOARD_OPTIONS, "board-sim": SIM_OPTIONS}[name]
    opt.check_known(name, options, accepted)  # before any backend (or pynq) is loaded


def _first(mask: np.ndarray) -> tuple[int, ...]:
    """Index of the first True entry of a non-empty boolean array."""
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


class BnnDriver:
    """Run an exported binarized network on images, on one backend.

    ``options`` go to the backend: ``sim="icarus"`` and ``run_network``
    options such as ``check=True`` for rtl; ``bitfile=``,
    ``overlay=``, ``accel_name=``, ``dma_name=``, ``timeout_s=``,
    ``max_batch=`` for board (docs/DRIVER.md). An option the backend does not
    take is a ``TypeError`` listing the ones it does; a value of the wrong
    type or range is a ``TypeError``/``ValueError`` naming the option.
    """

    def __init__(self, export_dir: str | Path | art.Artifact, backend: str = "golden", **options: Any):
        _check_backend(backend, options)  # names first: a typo fails before anything is loaded
        if not isinstance(export_dir, (str, os.PathLike, art.Artifact)):
            raise TypeError(f"export_dir={export_dir!r} ({type(export_dir).__name__}): expected the export folder "
                            "(str or Path) or a loaded bnnflow.artifact.Artifact")
        self.artifact = export_dir if isinstance(export_dir, art.Artifact) else art.load(export_dir)
        bits = self.artifact.input_bits
        if not 1 <= bits <= 8:  # the batch goes to the backends as uint8: more bits would wrap silently
            raise art.ArtifactError(f"{self.artifact.root}: network.input_bits is {bits}; the driver (and "
                                    "docs/ARTIFACT.md) take 1..8 bits per input element")
        self.backend_name = backend
        self.backend = _backend_class(backend)(self.artifact, **options)
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
        """Validate a batch and return it as (N, F) uint8; raise ValueError/TypeError saying what is wrong.

        Accepted: an integer numpy array (any integer dtype, any memory layout)
        or nested lists of ints, of shape (N, F) or (N, *input_shape), values in
        0..2**input_bits - 1. N may be 0 (the result is then empty). Refused,
        with a message naming ``images``, what was found and what is expected:
        other shapes (ValueError), values out of range (ValueError), and bool,
        float (even whole-numbered), complex, object, string and masked arrays
        (TypeError): nothing is rounded, wrapped or cast silently.
        """
        bits = self.input_bits
        hi = (1 << bits) - 1
        expected = self._expected()
        wanted = f"an integer array of shape {expected} with unsigned {bits}-bit values (0..{hi})"
        if isinstance(images, np.ma.MaskedArray):
            raise TypeError(f"images is a masked array; expected {wanted}: fill or drop the masked entries "
                            "first (e.g. images.filled(0)), masks are not applied")
        try:
            arr = np.asarray(images)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"images could not be made into an array ({exc}); expected {wanted}") from None
        except Exception as exc:  # anything np.asarray cannot convert
            raise TypeError(f"images of type {type(images).__name__} could not be made into an array ({exc}); "
                            f"expected {wanted}") from None
        kind = arr.dtype.kind
        if kind not in "biufc":
            given = (f"a {type(images).__name__}" if arr.ndim == 0 and kind == "O"
                     else f"an array of dtype {arr.dtype}")
            raise TypeError(f"images must be {wanted}, got {given}")
        given = arr
        if arr.ndim >= 2 and arr.shape[1:] == self.input_shape:
            arr = arr.reshape(arr.shape[0], self.input_features)
        elif not (arr.ndim == 2 and arr.shape[1] == self.input_features):
            hint = ""
            if arr.shape in ((self.input_features,), self.input_shape):
                hint = "; for one image pass images[None]"
            elif arr.size == 0:
                hint = f"; an empty batch is np.zeros((0, {self.input_features}), np.uint8)"
            raise ValueError(f"images must have shape {expected}, got {arr.shape}{hint}")
        if kind == "b":
            raise TypeError(f"images must be {wanted}, got dtype bool; bool images are not read as 0/1: "
                            "pass images.astype(np.uint8) if that is what they mean")
        if kind in "fc":
            raise TypeError(self._float_message(given, wanted))
        if arr.size:
            lo_v, hi_v = int(arr.min()), int(arr.max())
            if lo_v < 0 or hi_v > hi:
                at = _first(~((given >= 0) & (given <= hi)))
                raise ValueError(
                    f"images: values must be unsigned {bits}-bit integers in 0..{hi} "
                    f"(network input_bits={bits}), got values in {lo_v}..{hi_v}; first out of range: "
                    f"images[{', '.join(map(str, at))}] = {int(given[at])}")
        return np.ascontiguousarray(arr, dtype=np.uint8)

    def _float_message(self, arr: np.ndarray, wanted: str) -> str:
        """Why a float/complex batch is refused, with the first offending value and the fix."""
        head = f"images must be {wanted}, got dtype {arr.dtype}"
        tail = "; quantize the images as the training data was (bnnflow.datasets) and pass integers"
        if arr.size == 0:
            return head + tail
        if arr.dtype.kind == "c":
            return head + " (complex)" + tail
        finite = np.isfinite(arr)
        if not finite.all():
            at = _first(~finite)
            return head + f", with {arr[at]} at images[{', '.join(map(str, at))}]" + tail
        whole = arr == np.floor(arr)
        if not whole.all():
            at = _first(~whole)
            return head + f", with the non-integer value {arr[at]} at images[{', '.join(map(str, at))}]" + tail
        if arr.min() >= 0 and arr.max() <= (1 << self.input_bits) - 1:
            return head + ("; the values are whole numbers in range, so images.astype(np.uint8) converts them "
                           "exactly (floats are refused rather than rounded)")
        return head + f", with values in {arr.min():g}..{arr.max():g}" + tail

    # -- running -------------------------------------------------------------------
    def scores(self, images: Any) -> np.ndarray:
        """(N, num_classes) int64 integer scores of a batch; records :attr:`last_timing`."""
        flat = self.check_images(images)
        start = time.perf_counter()
        result = self.backend.run(flat)
        seconds = time.perf_counter() - start
        scores = np.asarray(result.scores)
        expected = (flat.shape[0], self.num_classes)
        if scores.shape != expected or scores.dtype.kind not in "iu":
            # a backend bug, never a user error: refuse to hand back anything but one integer score per entry
            raise RuntimeError(f"backend {self.backend_name!r} returned scores of shape {scores.shape} and dtype "
                               f"{scores.dtype}, expected integers of shape {expected}")
        self.last_timing = BatchTiming(
            backend=self.backend_name, images=int(flat.shape[0]), seconds=seconds,
            cycles_per_image=result.cycles_per_image, model_cycles_per_image=result.model_cycles_per_image,
            details=dict(result.details))
        return scores.astype(np.int64)

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

        if limit is not None and (not isinstance(limit, (int, np.integer)) or isinstance(limit, bool)):
            raise TypeError(f"limit={limit!r} ({type(limit).__name__}): expected a positive integer or None")
        if limit is not None and limit < 1:
            raise ValueError(f"limit={limit}: expected a positive integer (the number of test vectors to run) "
                             "or None for all")
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
