"""The ``board`` backend: the accelerator in the FPGA of a PYNQ board.

Built on the PYNQ API: ``pynq.Overlay`` loads the bitstream and binds
:class:`~bnnflow.host.accel_ip.BnnflowAccel` to the accelerator IP (HLS or
Verilog engine), ``pynq.allocate`` gives the DMA buffers and the AXI DMA
driver moves them. pynq is imported only when this backend is constructed,
so ``import bnnflow.host`` needs no pynq.

The interface is docs/ACCEL.md's: DMA-ready beat streams (``bnnflow.accel``
fixes the buffer layout), a register map with ``reps``, ``mode``,
``signature`` and ``status``, and a load mode that takes new parameters
through the input DMA. At construction the backend reads the bitstream's
hardware signature and refuses an export of another signature.

One run of a chunk of images (docs/DRIVER.md has the full protocol):
pack the images into the send buffer, start the S2MM (receive) channel,
write ``reps``, ``mode`` and ap_start, start the MM2S (send) channel, wait for
both channels and ap_done, check STATUS, unpack the scores. Packing and
unpacking are vectorized numpy (``bnnflow.packing.pack_vectors``/
``unpack_vectors``) and timed apart from the transfer, so
``BnnDriver.throughput_test`` can tell the host's share from the
accelerator's.
"""

from __future__ import annotations

import functools
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bnnflow import accel
from bnnflow import artifact as art

from . import dma_layout
from . import options as opt
from .result import BackendResult

DEFAULT_DMA = "axi_dma_0"
#: What pynq's AXI DMA driver assumes when the .hwh gives no c_sg_length_width.
DEFAULT_MAX_TRANSFER = (1 << 26) - 1

#: The keyword options of ``BnnDriver(..., backend="board")``.
BOARD_OPTIONS = ("bitfile", "overlay", "accel_name", "dma_name", "timeout_s", "max_batch", "fclk_mhz")
#: ``board-sim`` brings its own overlay, so it takes no ``bitfile``/``overlay``, but a device configuration.
SIM_OPTIONS = ("engine", "dma_data_width", "length_width", "accel_name", "dma_name", "timeout_s", "max_batch")
#: The AXI DMA's stream widths in the .hwh (PG021 parameter names), checked against the accelerator's beats.
DMA_STREAM_WIDTHS = (("c_m_axis_mm2s_tdata_width", "input", "MM2S"), ("c_s_axis_s2mm_tdata_width", "output", "S2MM"))


class BoardNotFoundError(RuntimeError):
    """No PYNQ board (or no pynq) on this machine."""


class BoardError(RuntimeError):
    """The board answered, but not as the artifact says it should."""


class SignatureMismatchError(BoardError):
    """The accelerator is built for another hardware signature than the export (docs/ACCEL.md).

    Raised on every backend by ``BnnDriver.load`` for an export of another
    signature, and by the board backends at construction when the bitstream
    reports another signature than the export's.
    """


def import_pynq():
    try:
        import pynq
    except ImportError as exc:
        raise BoardNotFoundError(
            f"the board backend needs pynq, which cannot be imported ({exc}). A PYNQ board image has pynq "
            "in its own Python environment: run as root inside it (`sudo -s`, then `source "
            "/etc/profile.d/pynq_venv.sh`; Jupyter on the board already is) and install bnnflow there with "
            "`pip3 install --no-deps bnnflow-*.whl` (README: On the board). On a host (board-sim): "
            "`pip install 'bnnflow[board]'`; or use backend='golden' or 'rtl'") from exc
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


#: The highest fabric clock the option takes (the PL clock generators of Zynq-7000 and UltraScale+ stop near it).
MAX_FCLK_MHZ = 500.0


def set_fabric_clock(pynq, mhz: float) -> float:
    """Set PL clock 0 through PYNQ (``Clocks.fclk0_mhz``) and return what the PS reports back.

    The PS divides its PLL by integers, so the result is the nearest clock it
    can make; the timing closure of the bitstream was for the block design's
    clock, so a faster one is the user's risk (docs/DRIVER.md).
    """
    clocks = getattr(pynq, "Clocks", None)
    if clocks is None or not hasattr(clocks, "fclk0_mhz"):
        raise BoardError("this pynq has no Clocks.fclk0_mhz (pynq.ps.Clocks); cannot set fclk_mhz")
    clocks.fclk0_mhz = float(mhz)
    return float(clocks.fclk0_mhz)


def resolve_bitfile(artifact: art.Artifact, bitfile: str | Path | None) -> Path:
    """The bitstream to load: ``bitfile``; else the manifest's ``board.bitfile``; else the one
    ``bnnflow-<board>-<engine>.bit`` that ``make bitstream`` wrote beside the export."""
    if bitfile is None:
        rel = artifact.manifest.get("board", {}).get("bitfile")
        if rel is not None:
            bitfile = artifact.root / rel
        else:
            found = sorted(artifact.root.resolve().parent.glob("bnnflow-*.bit"))
            if len(found) > 1:
                raise BoardError(f"several bitstreams beside the export ({', '.join(p.name for p in found)}): "
                                 "pass bitfile= to choose one")
            if not found:
                raise BoardError(f"no bitstream given and none beside the export (bnnflow-*.bit in "
                                 f"{artifact.root.resolve().parent}): pass bitfile='path/to/bnnflow.bit' (with its "
                                 ".hwh of the same name beside it), or build one with `make bitstream RUN=...`")
            bitfile = found[0]
    path = Path(bitfile)
    if not path.is_file():
        raise BoardError(f"{path}: bitstream not found")
    if not path.with_suffix(".hwh").is_file():
        raise BoardError(f"{path.with_suffix('.hwh')}: missing; pynq.Overlay needs the block design's "
                         ".hwh beside the .bit, with the same name")
    return path


def signature_file(bitfile: str | Path) -> Path:
    """``<bitfile stem>.signature.json``: what the build wrote beside the bitstream (bnnflow.vivado.write_build)."""
    return Path(bitfile).with_suffix(".signature.json")


def signature_mismatch(built: int, artifact: art.Artifact, bitfile: str | Path | None = None,
                       built_description: dict[str, Any] | None = None, what: str | None = None) -> str:
    """Why an accelerator of signature ``built`` cannot run ``artifact``, naming the differing fields.

    The fields come from ``built_description`` if given, else from the
    ``.signature.json`` beside ``bitfile`` when there is one and it belongs to
    this signature; without either the message names both signatures only.
    """
    wanted = artifact.manifest["hardware"]["description"]
    source = what or (f"the bitstream {bitfile}" if bitfile else "the accelerator")
    text = (f"{source} is built for hardware signature 0x{built:08x}, the export {artifact.root} has "
            f"0x{artifact.signature:08x}")
    if built_description is not None:
        text += f" ({accel.describe_difference(built_description, wanted)})"
    elif bitfile is not None:
        sidecar = signature_file(bitfile)
        try:
            data = json.loads(sidecar.read_text()) if sidecar.is_file() else None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            text += f"; {sidecar} cannot be read ({exc})"
        else:
            if data is None:
                text += f"; no {sidecar.name} beside the bitstream names the differing fields"
            elif data.get("signature") != f"0x{built:08x}" or not isinstance(data.get("description"), dict):
                text += (f"; {sidecar} describes signature {data.get('signature')!r}, not the bitstream's: it "
                         "belongs to another build")
            else:
                text += f" ({accel.describe_difference(data['description'], wanted)}; from {sidecar.name})"
    return (text + ". A bitstream runs the exports of its own signature (same topology, folding and bit widths, "
            "docs/ACCEL.md): build one for this export, or use the export it was built for")


class BoardBackend:
    """Scores from the FPGA, through an overlay with a bnnflow accelerator and an AXI DMA."""

    name = "board"
    OPTIONS = BOARD_OPTIONS
    #: What each run measures besides its total time, summed over its DMA transfers (BackendResult.details):
    #: ``pack_seconds``: images -> bytes in the send buffer (dma_layout.pack_images and the copy into it);
    #: ``transfer_seconds``: start of the receive channel to the checked receive length -- the DMA both
    #: ways, the engine, pynq's cache flush/invalidate of the buffers and the polling;
    #: ``unpack_seconds``: receive buffer -> scores (dma_layout.unpack_scores).
    SECONDS = ("pack_seconds", "transfer_seconds", "unpack_seconds")

    @staticmethod
    def check_options(accel_name, dma_name, timeout_s, max_batch) -> None:
        """Type and range of the options every board backend has (before pynq is touched)."""
        opt.check_name("accel_name", accel_name, none_ok=True)
        opt.check_name("dma_name", dma_name)
        opt.check_number("timeout_s", timeout_s, low=0, low_open=True)
        opt.check_int("max_batch", max_batch, minimum=1, none_ok=True)

    def __init__(
        self,
        artifact: art.Artifact,
        bitfile: str | Path | None = None,
        overlay=None,
        accel_name: str | None = None,
        dma_name: str = DEFAULT_DMA,
        timeout_s: float = 10.0,
        max_batch: int | None = None,
        fclk_mhz: float | None = None,
    ):
        """Load ``bitfile`` (or use an already loaded ``overlay``), find the IPs, check the signature.

        ``accel_name`` None finds the one IP whose VLNV is a bnnflow
        accelerator's (``BnnflowAccel.bindto``). The stream layout in the DMA
        buffers is the accelerator's (docs/ACCEL.md). The bitstream's hardware
        signature must be the export's (:class:`SignatureMismatchError`).
        ``max_batch`` caps the images per DMA transfer (the DMA's maximum
        transfer length caps it anyway). ``fclk_mhz`` sets the fabric clock
        (PYNQ's ``Clocks.fclk0_mhz``) after the overlay is loaded; None keeps
        the block design's (100 MHz from ``make bitstream``).
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
        if fclk_mhz is not None:
            opt.check_number("fclk_mhz", fclk_mhz, low=0, low_open=True, high=MAX_FCLK_MHZ)
        self.timeout_s = float(timeout_s)
        self.in_stream, self.out_stream = accel.input_stream(artifact), accel.output_stream(artifact)
        self.in_port = dma_layout.input_port(artifact)
        self.out_port = dma_layout.output_port(artifact)
        self._pynq = import_pynq()
        if overlay is None:
            probe_board(self._pynq)
            bitfile = resolve_bitfile(artifact, bitfile)
            overlay = self._pynq.Overlay(str(bitfile))
        self.overlay = overlay
        #: The fabric clock in MHz as PYNQ reports it after ``fclk_mhz`` was applied (None: not set here).
        self.fclk_mhz = None if fclk_mhz is None else set_fabric_clock(self._pynq, fclk_mhz)
        self.bitfile = bitfile if bitfile is not None else getattr(overlay, "bitfile_name", None)
        self.accel = self._accel(accel_name)
        #: The hardware signature the bitstream reports (checked equal to the export's).
        self.signature = self.accel.signature(self.timeout_s)
        if self.signature != artifact.signature:
            raise SignatureMismatchError(signature_mismatch(self.signature, artifact, self.bitfile))
        self.dma = self._find_ip(dma_name, "AXI DMA")
        for channel in ("sendchannel", "recvchannel"):
            if getattr(self.dma, channel, None) is None:
                raise BoardError(f"overlay IP '{dma_name}' has no {channel}: the AXI DMA needs both "
                                 "MM2S (send) and S2MM (receive) enabled")
        self._check_stream_widths(dma_name)
        self.max_transfer = int(getattr(self.dma, "buffer_max_size", DEFAULT_MAX_TRANSFER))
        per_transfer = min(self.max_transfer // self.in_port.bytes_per_image,
                           self.max_transfer // self.out_port.bytes_per_image)
        if per_transfer < 1:
            raise BoardError(f"the DMA's maximum transfer of {self.max_transfer} bytes is smaller than one image "
                             f"({self.in_port.bytes_per_image} bytes in, {self.out_port.bytes_per_image} out); "
                             "widen the DMA's buffer length register (c_sg_length_width)")
        self.images_per_transfer = per_transfer if max_batch is None else min(per_transfer, int(max_batch))
        self._slots: list[tuple | None] = [None, None]   # (send, receive) buffers per slot
        self._capacity = 0
        self._seconds = dict.fromkeys(self.SECONDS, 0.0)
        self._failed_load: str | None = None  # what failed, once a load failed: the memories are unknown then

    # -- setup -----------------------------------------------------------------
    def _find_ip(self, name: str, what: str):
        try:
            # a hierarchical cell ("hier/bnnflow_top_0") is an attribute of its hierarchy
            return functools.reduce(getattr, name.split("/"), self.overlay)
        except AttributeError:
            names = sorted(getattr(self.overlay, "ip_dict", {}))
            raise BoardError(f"the overlay has no {what} named '{name}' (it has: {', '.join(names) or 'no IP'}); "
                             "pass its name to the driver") from None

    def _accel(self, name: str | None):
        from .accel_ip import VLNVS, BnnflowAccel

        ip_dict = getattr(self.overlay, "ip_dict", {})
        if name is None:  # discovery: the one IP of a bnnflow accelerator's VLNV
            found = sorted(n for n, d in ip_dict.items() if isinstance(d, dict) and d.get("type") in VLNVS)
            if len(found) != 1:
                listing = ", ".join(f"{n} ({d.get('type', '?') if isinstance(d, dict) else '?'})"
                                    for n, d in sorted(ip_dict.items())) or "no IP"
                if not found:
                    raise BoardError(f"the overlay has no bnnflow accelerator (an IP of type {' or '.join(VLNVS)}); "
                                     f"it has: {listing}; pass accel_name= to name the accelerator's instance")
                raise BoardError(f"the overlay has {len(found)} bnnflow accelerators ({', '.join(found)}); "
                                 "pass accel_name= to pick one")
            name = found[0]
        #: The accelerator's instance name in the overlay (given, or found by its VLNV).
        self.accel_name = name
        ip = self._find_ip(name, "bnnflow accelerator")
        if isinstance(ip, BnnflowAccel):
            return ip
        description = ip_dict.get(name)
        if description is None or not hasattr(ip, "mmio"):
            raise BoardError(f"overlay IP '{name}' is a {type(ip).__name__}, not a bnnflow accelerator")
        vlnv = description.get("type", "?")
        if vlnv.rpartition(":")[0] not in {v.rpartition(":")[0] for v in VLNVS}:
            raise BoardError(f"overlay IP '{name}' is {vlnv}, expected one of {', '.join(VLNVS)}: the bitstream "
                             "holds another IP")
        return BnnflowAccel(description)  # same IP, another version string: drive it anyway

    def _check_stream_widths(self, dma_name: str) -> None:
        """The DMA's stream widths (when the .hwh gives them) must be the accelerator's beat widths."""
        parameters = (getattr(self.dma, "description", None) or {}).get("parameters") or {}
        for key, side, channel in DMA_STREAM_WIDTHS:
            value = parameters.get(key, parameters.get(key.upper()))
            beat_bits = (self.in_stream if side == "input" else self.out_stream).beat_bits
            if value is not None and str(value).isdigit() and int(value) != beat_bits:
                raise BoardError(f"overlay IP '{dma_name}': its {channel} stream is {value} bits wide ({key}), the "
                                 f"accelerator's {side} beats are {beat_bits} bits (docs/ACCEL.md): the block design "
                                 "does not match this export's accelerator")

    def _allocate(self, nbytes: int):
        target = getattr(self.overlay, "device", None)  # the overlay's device; None = pynq's active one
        return self._pynq.allocate((nbytes,), dtype=np.uint8, target=target)

    def _buffers(self, n: int, slot: int = 0):
        """Send and receive buffers of slot 0 or 1 (two slots: one fills while the other is on the DMA)."""
        if n > self._capacity:
            self._free_buffers()
            self._capacity = n
        if self._slots[slot] is None:
            self._slots[slot] = (self._allocate(self._capacity * self.in_port.bytes_per_image),
                                 self._allocate(self._capacity * self.out_port.bytes_per_image))
        return self._slots[slot]

    def _free_buffers(self) -> None:
        for pair in self._slots:
            for buf in pair or ():
                if hasattr(buf, "freebuffer"):
                    buf.freebuffer()
        self._slots = [None, None]
        self._capacity = 0

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

    def _pack(self, images: np.ndarray, slot: int) -> int:
        """Pack a chunk into slot ``slot``'s send buffer (while the DMA may be busy with the other slot)."""
        in_buf, _ = self._buffers(images.shape[0], slot)
        clock = time.perf_counter()
        data = dma_layout.pack_images(self.artifact, images, self.in_port)
        in_buf[:data.size] = data
        self._seconds["pack_seconds"] += time.perf_counter() - clock
        return int(data.size)

    def _launch(self, n: int, nbytes: int, slot: int) -> float:
        """Start one infer run on slot ``slot``: receive channel, ap_start, send channel. Returns its start time."""
        in_buf, out_buf = self._slots[slot]
        started = time.perf_counter()
        self.dma.recvchannel.transfer(out_buf, nbytes=n * self.out_port.bytes_per_image)
        self.accel.start(n, accel.MODE_INFER)
        self.dma.sendchannel.transfer(in_buf, nbytes=nbytes)
        return started

    def _finish(self, n: int, slot: int, started: float) -> None:
        """Wait for the run on slot ``slot`` and check it; its scores stay in the receive buffer."""
        send, recv = self.dma.sendchannel, self.dma.recvchannel
        out_bytes = n * self.out_port.bytes_per_image
        self._wait_channel(send, "send (MM2S)")
        self._wait_channel(recv, "receive (S2MM)")
        self.accel.wait(self.timeout_s, what=f"infer run of {n} images")
        self.accel.check(f"infer run of {n} images")
        received = int(recv.transferred)
        if received != out_bytes:
            raise BoardError(f"received {received} bytes of scores for {n} images, expected {out_bytes} "
                             f"({self.out_port.words_per_image} words of {self.out_port.word_bytes} bytes each): "
                             "the bitstream's network does not match the artifact")
        self._seconds["transfer_seconds"] += time.perf_counter() - started

    def _unpack(self, n: int, slot: int) -> np.ndarray:
        clock = time.perf_counter()
        scores = dma_layout.unpack_scores(self.artifact, self._slots[slot][1], self.out_port, n)
        self._seconds["unpack_seconds"] += time.perf_counter() - clock
        return np.asarray(scores)

    # -- loading parameters ---------------------------------------------------------
    def load(self, artifact: art.Artifact) -> dict[str, Any]:
        """Put ``artifact``'s weights and thresholds into the running accelerator (load mode, docs/ACCEL.md).

        The caller (``BnnDriver.load``) has checked that ``artifact`` has this
        bitstream's signature. Returns the stream's ``stream_bytes``, ``beats``
        and the ``seconds`` the load took (DMA and accelerator).
        """
        if artifact.signature != self.signature:
            raise SignatureMismatchError(signature_mismatch(self.signature, artifact, self.bitfile))
        data = accel.param_stream(artifact)
        seconds = self.load_stream(data, expected_beats=accel.param_beats(artifact))
        self.artifact = artifact
        return {"stream_bytes": int(data.size), "beats": int(data.shape[0]), "seconds": seconds}

    def load_stream(self, data: np.ndarray, expected_beats: int | None = None) -> float:
        """One load-mode run on ``data`` (parameter stream bytes): the raw transfer :meth:`load` makes.

        The DMA sends it as one transfer (TLAST on its last beat); then the
        accelerator's STATUS is checked, so a stream of the wrong length or
        with padding bits set is an :class:`~bnnflow.host.accel_ip.AcceleratorStatusError`
        naming the cause. ``expected_beats`` (the signature's ``param_beats``)
        only makes the messages more precise. Returns the seconds it took.
        """
        data = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
        beat_bytes = self.in_stream.beat_bytes
        beats = -(-data.size // beat_bytes)
        sent = f"{beats} beats of {beat_bytes} bytes sent" + (
            f", the signature's parameter stream has {expected_beats}" if expected_beats is not None else "")
        if data.size == 0:
            raise ValueError("an empty parameter stream: a load-mode run takes the signature's parameter stream")
        if data.size > self.max_transfer:
            raise BoardError(f"the parameter stream of {data.size} bytes is longer than the DMA's maximum transfer "
                             f"of {self.max_transfer} bytes; it must be one transfer (TLAST on its last beat): "
                             "widen the DMA's buffer length register (c_sg_length_width)")
        from .accel_ip import AcceleratorStatusError

        self._check_usable()
        buf = self._allocate(data.size)
        what = f"parameter load ({sent})"
        try:
            buf[:] = data
            start = time.perf_counter()
            self.accel.start(0, accel.MODE_LOAD)
            self.dma.sendchannel.transfer(buf, nbytes=int(data.size))
            try:
                self.accel.wait(self.timeout_s, what=what)
            except TimeoutError as exc:
                raise TimeoutError(f"{exc}: it waits for more of the parameter stream than was sent; reload the "
                                   "overlay before the next run") from None
            try:
                self.accel.check(what)
            except AcceleratorStatusError as exc:
                raise AcceleratorStatusError(f"{exc}; reload the overlay before the next run (the accelerator's "
                                             "memories hold what it took of this stream)", exc.status) from None
            self._wait_channel(self.dma.sendchannel, "send (MM2S) of the parameter stream")
            return time.perf_counter() - start
        except BaseException:
            # the memories now hold neither the old parameters nor the new ones: never compute with them
            self._failed_load = what
            raise
        finally:
            if hasattr(buf, "freebuffer"):
                buf.freebuffer()

    def _check_usable(self) -> None:
        if self._failed_load is not None:
            raise BoardError(f"the accelerator's parameters are unknown after a failed {self._failed_load}: "
                             "reload the overlay (make a new BnnDriver) before the next run or load")

    def run(self, images: np.ndarray) -> BackendResult:
        self._check_usable()
        n = images.shape[0]
        classes = self.artifact.num_classes
        per = self.images_per_transfer
        if not (isinstance(per, int) and per >= 1):
            raise RuntimeError(f"board backend: images_per_transfer is {per!r}, expected a positive integer")
        scores = np.empty((n, classes), dtype=np.int64)
        self._seconds = dict.fromkeys(self.SECONDS, 0.0)
        chunks = [(start, min(n, start + per)) for start in range(0, n, per)]
        # Double buffering: chunk i is packed into one slot while chunk i-1 runs from the other, and
        # chunk i-1 is unpacked while chunk i runs, so the host's work hides behind the accelerator's.
        running = None  # (chunk index, slot, start time) of the run on the DMA
        for i in range(len(chunks) + 1):
            slot, chunk_i = i % 2, chunks[i] if i < len(chunks) else None
            nbytes = self._pack(images[chunk_i[0]:chunk_i[1]], slot) if chunk_i is not None else 0
            if running is not None:
                j, prev_slot, started = running
                self._finish(chunks[j][1] - chunks[j][0], prev_slot, started)
                running = None
            if chunk_i is not None:
                running = (i, slot, self._launch(chunk_i[1] - chunk_i[0], nbytes, slot))
            if i > 0:
                a, b = chunks[i - 1]
                chunk = self._unpack(b - a, (i - 1) % 2)
                if chunk.shape != (b - a, classes):
                    raise BoardError(f"images {a}..{b - 1}: got scores of shape {chunk.shape}, "
                                     f"expected {(b - a, classes)}")
                scores[a:b] = chunk
        return BackendResult(scores=scores, details={"transfers": len(chunks), **self._seconds})

    def close(self) -> None:
        self._free_buffers()
