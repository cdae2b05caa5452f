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


def _open(export_dir: Any) -> art.Artifact:
    """The artifact of an export folder (or a loaded one), with input elements the driver can pass on."""
    if not isinstance(export_dir, (str, os.PathLike, art.Artifact)):
        raise TypeError(f"export_dir={export_dir!r} ({type(export_dir).__name__}): expected the export folder "
                        "(str or Path) or a loaded bnnflow.artifact.Artifact")
    artifact = export_dir if isinstance(export_dir, art.Artifact) else art.load(export_dir)
    bits = artifact.input_bits
    if not 1 <= bits <= 8:  # the batch goes to the backends as uint8: more bits would wrap silently
        raise art.ArtifactError(f"{artifact.root}: network.input_bits is {bits}; the driver (and "
                                "docs/ARTIFACT.md) take 1..8 bits per input element")
    return artifact


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
    The board backends check at construction that the bitstream's hardware
    signature is the export's; :meth:`load` swaps in another export of that
    signature.
    """

    def __init__(self, export_dir: str | Path | art.Artifact, backend: str = "golden", **options: Any):
        _check_backend(backend, options)  # names first: a typo fails before anything is loaded
        self.artifact = _open(export_dir)
        #: The hardware signature the driver runs (the bitstream's on board; the first export's elsewhere)
        #: and its description (docs/ACCEL.md): ``load`` takes exports of this signature only.
        self.signature = self.artifact.signature
        self.hardware_description: dict[str, Any] = self.artifact.manifest["hardware"]["description"]
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

    def throughput_test(self, images: Any = None, batch: int | None = None, warmup: bool = True) -> dict[str, Any]:
        """Images/s and latency of one batch: the accelerator alone and end to end, and the host's share.

        Why: on a small ARM host the Python around the accelerator (input
        checks, packing the DMA buffer, unpacking the scores) can set the frame
        rate; this says how much of a batch's time is the accelerator's.

        ``images``: a batch as for :meth:`scores`, or None for the artifact's
        stored test vectors (``bnnflow.writer.read_vectors``); ``batch``: the
        number of images to time (a positive integer), the given images
        repeated or cut to it, or None for all of them once. ``warmup`` runs
        the batch once untimed first (the board allocates its DMA buffers
        then), so the timed run is the steady state.

        Returns ``backend``, ``images`` (the batch timed),
        ``accelerator_images_per_s``/``accelerator_latency_s`` (the
        accelerator's time for the batch: on ``board``/``board-sim`` the DMA
        transfers and the engine, ``transfer_seconds``; on ``golden`` the
        computation, on ``rtl`` the simulation -- the backend's whole run),
        ``end_to_end_images_per_s``/``end_to_end_latency_s`` (the :meth:`scores`
        call: input check, packing, run, unpacking), ``pack_seconds`` and
        ``unpack_seconds`` (board backends; None where the backend has no
        separate packing), ``backend_seconds`` (the backend's run,
        :attr:`BatchTiming.seconds`), ``score_mismatches`` (scores that differ
        from the stored golden scores when the test vectors are used, else
        None) and ``timing`` (the :class:`BatchTiming`).
        """
        from bnnflow.writer import read_vectors

        if batch is not None and (not isinstance(batch, (int, np.integer)) or isinstance(batch, bool)):
            raise TypeError(f"batch={batch!r} ({type(batch).__name__}): expected a positive integer (images to "
                            "time) or None for the given images once")
        if batch is not None and batch < 1:
            raise ValueError(f"batch={batch}: expected a positive integer (images to time) or None")
        if not isinstance(warmup, bool):
            raise TypeError(f"warmup={warmup!r} ({type(warmup).__name__}): expected True or False")
        golden = None
        if images is None:
            source, _, golden = read_vectors(self.artifact)
            if source.shape[0] == 0:
                raise ValueError(f"{self.artifact.root}: the artifact stores no test vectors (vectors.count is 0); "
                                 "pass images= to time")
        else:
            source = self.check_images(images)
            if source.shape[0] == 0:
                raise ValueError("images is an empty batch; a throughput test needs at least one image")
        n = source.shape[0] if batch is None else int(batch)
        pick = np.arange(n) % source.shape[0]  # repeat or cut to the batch size
        timed = source[pick]
        if warmup:
            self.scores(timed)
        start = time.perf_counter()
        scores = self.scores(timed)
        end_to_end = time.perf_counter() - start
        timing = self.last_timing
        details = timing.details
        accelerator = float(details.get("transfer_seconds", timing.seconds))

        def rate(seconds: float) -> float:
            return n / seconds if seconds > 0 else float("inf")

        return {
            "backend": self.backend_name,
            "images": n,
            "accelerator_images_per_s": rate(accelerator),
            "accelerator_latency_s": accelerator,
            "end_to_end_images_per_s": rate(end_to_end),
            "end_to_end_latency_s": end_to_end,
            "pack_seconds": details.get("pack_seconds"),
            "unpack_seconds": details.get("unpack_seconds"),
            "backend_seconds": timing.seconds,
            "score_mismatches": None if golden is None else int(np.any(scores != golden[pick], axis=1).sum()),
            "timing": timing,
        }

    # -- loading other parameters ---------------------------------------------------------
    def load(self, export_dir: str | Path | art.Artifact) -> dict[str, Any]:
        """Run another export from now on, on the same accelerator: its weights and thresholds replace the current ones.

        Why: a bitstream is built for a hardware signature -- topology,
        folding, bit widths (docs/ACCEL.md) -- not for the weights, so a
        retrained network of the same shape runs without a new bitstream.

        The export must have the driver's :attr:`signature`; otherwise
        :class:`~bnnflow.host.SignatureMismatchError` names the fields where the
        two hardware descriptions differ, and nothing changes. On ``board`` and
        ``board-sim`` the parameter stream (``bnnflow.accel.param_stream``)
        goes through the DMA in load mode and the accelerator's STATUS is
        checked (a failed load raises and says to reload the overlay); on
        ``golden`` and ``rtl`` the backend switches to the export -- the
        "bitstream" there is the first export's signature, so a script
        behaves alike on every backend. Afterwards :meth:`scores` use the new
        parameters and :attr:`artifact` is the new export (its test vectors
        too).

        Returns ``backend``, ``export`` (its folder), ``signature`` (hex),
        ``stream_bytes`` (the parameter stream's size on the board backends,
        None elsewhere) and ``seconds`` (the whole load).
        """
        from .backend_board import SignatureMismatchError, signature_mismatch

        new = _open(export_dir)
        if new.signature != self.signature:
            raise SignatureMismatchError(signature_mismatch(
                self.signature, new, built_description=self.hardware_description,
                what=f"the driver's accelerator ({self.backend_name}, loaded with {self.artifact.root})"))
        start = time.perf_counter()
        info = self.backend.load(new)
        seconds = time.perf_counter() - start
        self.artifact = new
        return {"backend": self.backend_name, "export": str(new.root), "signature": f"0x{new.signature:08x}",
                "stream_bytes": info.get("stream_bytes"), "seconds": seconds}

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
