"""The ``board`` backend: the accelerator in the FPGA of a PYNQ board.

Built on the PYNQ API: ``pynq.Overlay`` loads the bitstream and binds
:class:`~bnnflow.host.accel_ip.BnnflowAccel` to the HLS IP, ``pynq.allocate``
gives the DMA buffers and the AXI DMA driver moves them. pynq is imported only
when this backend is constructed, so ``import bnnflow.host`` needs no pynq.

One run of a chunk of images (docs/DRIVER.md has the full protocol):
pack the images into the send buffer, start the S2MM (receive) channel,
write ``reps`` and ap_start, start the MM2S (send) channel, wait for both
channels and ap_done, unpack the scores.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from bnnflow import artifact as art

from . import dma_layout
from . import options as opt
from .result import BackendResult

DEFAULT_ACCEL = "bnnflow_top_0"
DEFAULT_DMA = "axi_dma_0"
#: What pynq's AXI DMA driver assumes when the .hwh gives no c_sg_length_width.
DEFAULT_MAX_TRANSFER = (1 << 26) - 1

#: The keyword options of ``BnnDriver(..., backend="board")``.
BOARD_OPTIONS = ("bitfile", "overlay", "accel_name", "dma_name", "in_word_bytes", "out_word_bytes", "timeout_s",
                 "max_batch")
#: ``board-sim`` brings its own overlay, so it takes no ``bitfile``/``overlay``, but a device configuration.
SIM_OPTIONS = ("engine", "dma_data_width", "length_width", "in_word_bytes", "out_word_bytes", "accel_name",
               "dma_name", "timeout_s", "max_batch")


class BoardNotFoundError(RuntimeError):
    """No PYNQ board (or no pynq) on this machine."""


class BoardError(RuntimeError):
    """The board answered, but not as the artifact says it should."""


def import_pynq():
    try:
        import pynq
    except ImportError as exc:
        raise BoardNotFoundError(
            f"the board backend needs pynq, which cannot be imported ({exc}); on the board install it with "
            "`pip install 'bnnflow[board]'`; elsewhere use backend='golden' or 'rtl'") from exc
    return pynq


def probe_board(pynq):
    """The active pynq Device, or :class:`BoardNotFoundError` saying there is none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pynq warns "is the XRT environment sourced?" off-board
        try:
            return pynq.Device.active_device
        except RuntimeError as exc:
            raise BoardNotFoundError(
                f"no PYNQ board found (pynq: {exc}); use backend='golden' or 'rtl'") from None


def resolve_bitfile(artifact: art.Artifact, bitfile: str | Path | None) -> Path:
    """The bitstream to load: ``bitfile``, else the manifest's ``board.bitfile``."""
    if bitfile is None:
        rel = artifact.manifest.get("board", {}).get("bitfile")
        if rel is None:
            raise BoardError("no bitstream given: pass bitfile='path/to/bnnflow.bit' "
                             "(with its .hwh of the same name beside it)")
        bitfile = artifact.root / rel
    path = Path(bitfile)
    if not path.is_file():
        raise BoardError(f"{path}: bitstream not found")
    if not path.with_suffix(".hwh").is_file():
        raise BoardError(f"{path.with_suffix('.hwh')}: missing; pynq.Overlay needs the block design's "
                         ".hwh beside the .bit, with the same name")
    return path


class BoardBackend:
    """Scores from the FPGA, through an overlay with ``bnnflow_top`` and an AXI DMA."""

    name = "board"
    OPTIONS = BOARD_OPTIONS

    @staticmethod
    def check_options(accel_name, dma_name, timeout_s, max_batch) -> None:
        """Type and range of the options every board backend has (before pynq is touched)."""
        opt.check_name("accel_name", accel_name)
        opt.check_name("dma_name", dma_name)
        opt.check_number("timeout_s", timeout_s, low=0, low_open=True)
        opt.check_int("max_batch", max_batch, minimum=1, none_ok=True)

    def __init__(
        self,
        artifact: art.Artifact,
        bitfile: str | Path | None = None,
        overlay=None,
        accel_name: str = DEFAULT_ACCEL,
        dma_name: str = DEFAULT_DMA,
        in_word_bytes: int | None = None,
        out_word_bytes: int | None = None,
        timeout_s: float = 10.0,
        max_batch: int | None = None,
    ):
        """Load ``bitfile`` (or use an already loaded ``overlay``) and find the IPs.

        ``in_word_bytes``/``out_word_bytes`` override the bytes per stream word
        in the DMA buffers (default ``ceil(TDATA bits / 8)``, docs/DRIVER.md).
        ``max_batch`` caps the images per DMA transfer (the DMA's maximum
        transfer length caps it anyway).
        """
        self.artifact = artifact
        opt.check_path("bitfile", bitfile)
        if overlay is not None and not hasattr(overlay, "ip_dict"):
            raise TypeError(f"option overlay={overlay!r} ({type(overlay).__name__}): expected a loaded pynq.Overlay "
                            "(an object with an ip_dict) or None")
        if overlay is not None and bitfile is not None:
            raise ValueError(f"options bitfile={str(bitfile)!r} and overlay=... both given: the overlay is already "
                             "loaded and the bitfile would be ignored; pass one of them")
        self.check_options(accel_name=accel_name, dma_name=dma_name, timeout_s=timeout_s, max_batch=max_batch)
        self.timeout_s = float(timeout_s)
        self.in_port = dma_layout.input_port(artifact, in_word_bytes)
        self.out_port = dma_layout.output_port(artifact, out_word_bytes)
        self._pynq = import_pynq()
        if overlay is None:
            probe_board(self._pynq)
            overlay = self._pynq.Overlay(str(resolve_bitfile(artifact, bitfile)))
        self.overlay = overlay
        self.accel = self._accel(accel_name)
        self.dma = self._find_ip(dma_name, "AXI DMA")
        for channel in ("sendchannel", "recvchannel"):
            if getattr(self.dma, channel, None) is None:
                raise BoardError(f"overlay IP '{dma_name}' has no {channel}: the AXI DMA needs both "
                                 "MM2S (send) and S2MM (receive) enabled")
        max_bytes = int(getattr(self.dma, "buffer_max_size", DEFAULT_MAX_TRANSFER))
        per_transfer = min(max_bytes // self.in_port.bytes_per_image, max_bytes // self.out_port.bytes_per_image)
        if per_transfer < 1:
            raise BoardError(f"the DMA's maximum transfer of {max_bytes} bytes is smaller than one image "
                             f"({self.in_port.bytes_per_image} bytes in, {self.out_port.bytes_per_image} out); "
                             "widen the DMA's buffer length register (c_sg_length_width)")
        self.images_per_transfer = per_transfer if max_batch is None else min(per_transfer, int(max_batch))
        self._in_buf = self._out_buf = None
        self._capacity = 0

    # -- setup -----------------------------------------------------------------
    def _find_ip(self, name: str, what: str):
        try:
            return getattr(self.overlay, name)
        except AttributeError:
            names = sorted(getattr(self.overlay, "ip_dict", {}))
            raise BoardError(f"the overlay has no {what} named '{name}' (it has: {', '.join(names) or 'no IP'}); "
                             "pass its name to the driver") from None

    def _accel(self, name: str):
        from .accel_ip import VLNV, BnnflowAccel

        ip = self._find_ip(name, "bnnflow_top accelerator")
        if isinstance(ip, BnnflowAccel):
            return ip
        description = getattr(self.overlay, "ip_dict", {}).get(name)
        if description is None or not hasattr(ip, "mmio"):
            raise BoardError(f"overlay IP '{name}' is a {type(ip).__name__}, not the bnnflow accelerator")
        vlnv = description.get("type", "?")
        if vlnv.rpartition(":")[0] != VLNV.rpartition(":")[0]:
            raise BoardError(f"overlay IP '{name}' is {vlnv}, expected {VLNV}: the bitstream holds another IP")
        return BnnflowAccel(description)  # same IP, another version string: drive it anyway

    def _buffers(self, n: int):
        if n > self._capacity:
            self.close()
            target = getattr(self.overlay, "device", None)  # the overlay's device; None = pynq's active one
            self._in_buf = self._pynq.allocate((n * self.in_port.bytes_per_image,), dtype=np.uint8, target=target)
            self._out_buf = self._pynq.allocate((n * self.out_port.bytes_per_image,), dtype=np.uint8, target=target)
            self._capacity = n
        return self._in_buf, self._out_buf

    # -- running -----------------------------------------------------------------
    def _wait_channel(self, channel, what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not channel.idle:
            if channel.error:
                mmio, offset = getattr(channel, "_mmio", None), getattr(channel, "_offset", 0)
                status = mmio.read(offset + 4) if mmio is not None else 0
                kinds = [text for bit, text in ((0x10, "internal error: transfer length 0, or a stream packet "
                                                 "longer than the receive buffer"),
                                                (0x20, "slave error: memory not accessible"),
                                                (0x40, "decode error: invalid address")) if status & bit]
                raise BoardError(f"DMA {what} stopped with DMASR=0x{status:04x} ({'; '.join(kinds) or 'error'}); "
                                 "reload the overlay before the next run")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"DMA {what} did not complete within {self.timeout_s} s (control register "
                    f"0x{self.accel.control:02x}); check that the bitstream was built from this artifact "
                    "and that the engine's output stream reaches the DMA with TLAST")
        channel.wait()  # returns at once now; invalidates the receive buffer, reads the length

    def _run_chunk(self, images: np.ndarray) -> np.ndarray:
        n = images.shape[0]
        data = dma_layout.pack_images(self.artifact, images, self.in_port)
        in_buf, out_buf = self._buffers(n)
        in_buf[:data.size] = data
        out_bytes = n * self.out_port.bytes_per_image
        send, recv = self.dma.sendchannel, self.dma.recvchannel
        recv.transfer(out_buf, nbytes=out_bytes)
        self.accel.start(n)
        send.transfer(in_buf, nbytes=int(data.size))
        self._wait_channel(send, "send (MM2S)")
        self._wait_channel(recv, "receive (S2MM)")
        self.accel.wait(self.timeout_s)
        received = int(recv.transferred)
        if received != out_bytes:
            raise BoardError(f"received {received} bytes of scores for {n} images, expected {out_bytes} "
                             f"({self.out_port.words_per_image} words of {self.out_port.word_bytes} bytes each): "
                             "the bitstream's network does not match the artifact")
        return dma_layout.unpack_scores(self.artifact, out_buf, self.out_port, n)

    def run(self, images: np.ndarray) -> BackendResult:
        n = images.shape[0]
        classes = self.artifact.num_classes
        per = self.images_per_transfer
        if not (isinstance(per, int) and per >= 1):
            raise RuntimeError(f"board backend: images_per_transfer is {per!r}, expected a positive integer")
        scores = np.empty((n, classes), dtype=np.int64)
        written = transfers = 0
        for start in range(0, n, per):
            stop = min(n, start + per)
            chunk = np.asarray(self._run_chunk(images[start:stop]))
            if chunk.shape != (stop - start, classes):
                raise BoardError(f"images {start}..{stop - 1}: got scores of shape {chunk.shape}, "
                                 f"expected {(stop - start, classes)}")
            scores[start:stop] = chunk
            written += stop - start
            transfers += 1
        if written != n:  # every row of the result comes from the board, or the call fails
            raise RuntimeError(f"board backend wrote scores for {written} of {n} images; refusing a partial result")
        return BackendResult(scores=scores, details={"transfers": transfers})

    def close(self) -> None:
        for buf in (self._in_buf, self._out_buf):
            if buf is not None and hasattr(buf, "freebuffer"):
                buf.freebuffer()
        self._in_buf = self._out_buf = None
        self._capacity = 0
