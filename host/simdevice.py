"""A simulated PYNQ board: a ``pynq.Device`` whose registers and memory are numpy.

PYNQ's extension point for new hardware is a ``pynq.Device`` subclass. This
one declares the ``REGISTER_RW`` capability, so every ``pynq.MMIO`` access --
and with it ``DefaultIP``, the real AXI DMA driver (``pynq.lib.dma.DMA``) and
:class:`~bnnflow.host.accel_ip.BnnflowAccel` -- turns into
:meth:`SimDevice.read_registers` / :meth:`SimDevice.write_registers` calls,
which drive register-level models of the two IPs of the block design:

- an AXI DMA in simple (direct register) mode: MM2S and S2MM channels with
  DMACR/DMASR/address/LENGTH registers; MM2S cuts a transfer into beats of
  the accelerator's input width (a partial last beat has TKEEP bits clear)
  and sets TLAST on its last beat; S2MM finishes at TLAST and reports the
  bytes it wrote in its LENGTH register;
- the accelerator of docs/ACCEL.md (the HLS ``bnnflow_top`` or the Verilog
  ``bnnflow_accel``): ap_ctrl_hs at 0x00, ``reps``, ``mode``, and
  ``signature``/``status`` with clear-on-read ap_vld. An infer run consumes
  exactly ``reps * SF * beats_per_word`` beats (``reps`` = 0: none), checks
  every word's padding and TKEEP (``STATUS_FORMAT_ERROR``), and ends each
  image's scores with TLAST when the image's last input beat had it; a load
  run consumes exactly ``accel.param_beats`` beats, checks that TLAST is on
  the last of them (``STATUS_LOAD_LENGTH_ERROR``) and the padding, and
  writes them into its memories (``accel.loaded_artifact``): the next infer
  runs compute with the loaded parameters; any other mode sets
  ``STATUS_BAD_MODE``. Every run writes ``signature`` and ``status``.

The device is built for one hardware signature: the artifact it is made
with, whose parameters are its power-on memory contents. ``allocate`` hands
out ``pynq.buffer.PynqBuffer`` objects backed by numpy memory at made-up
physical addresses, which the DMA model reads and writes. The engine's
arithmetic is a callable (default: the golden model of the memories'
contents), so what this exercises is the driver's side -- the register
protocol, the buffer byte layout, TLAST, chunking, loads and STATUS -- not
the RTL. For the RTL, ``engine="rtl"`` (:func:`make_device`) keeps this DMA
model and puts the export's generated accelerator, simulated, in place of the
numpy one (``bnnflow.sim.board_cosim.RtlSimDevice`` overrides the
accelerator's hooks: ``_accel_read``, ``_accel_write``,
``_step_accelerator``, ``_mm2s_drained``, ``close``).

Nothing here is registered with pynq's device probing (no ``_probe_``): a
simulated device is used only when passed explicitly, or inside
:meth:`SimDevice.activate`, which makes it ``pynq.Device.active_device``.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import numpy as np
import pynq
from pynq.buffer import PynqBuffer
from pynq.lib.dma import DMA

from bnnflow import accel
from bnnflow import artifact as art
from bnnflow.golden import GoldenModel
from bnnflow.vivado import ACCEL_IPS

from . import accel_ip, dma_layout
from . import options as opt
from .backend_board import DEFAULT_DMA, SIM_OPTIONS, BoardBackend, BoardError

DMA_BASE = 0x4040_0000
ACCEL_BASE = 0x43C0_0000
MEM_BASE = 0x1000_0000
PAGE = 4096

# AXI DMA (PG021) simple-mode register offsets within a channel (MM2S at 0x00, S2MM at 0x30)
DMACR, DMASR, ADDR, ADDR_MSB, LENGTH = 0x00, 0x04, 0x18, 0x1C, 0x28
SR_HALTED, SR_IDLE, SR_INT_ERR, SR_SLV_ERR, SR_DEC_ERR, SR_IOC = 0x1, 0x2, 0x10, 0x20, 0x40, 0x1000
#: The AXI DMA's (PG021) memory-map data widths and buffer length register widths.
DMA_DATA_WIDTHS = (32, 64, 128, 256, 512, 1024)
LENGTH_WIDTHS = (8, 26)


class _BeatStream:
    """An AXI4-Stream of ``beat_bytes``-byte beats: TDATA, whether TKEEP is all ones, TLAST."""

    def __init__(self, beat_bytes: int) -> None:
        self.beat_bytes = beat_bytes
        self.data = bytearray()
        self.keep: list[bool] = []   # per beat held: every TKEEP bit set
        self.last: list[bool] = []   # per beat held: TLAST
        self.strobes: list[int] = []  # per beat held: its leading bytes with TKEEP set (beat_bytes when all)

    def __len__(self) -> int:
        return len(self.last)

    def push(self, data: bytes, last: bool) -> None:
        """Bytes as an AXI DMA sends them: whole beats; a partial final beat has its missing bytes' TKEEP clear."""
        whole, rest = divmod(len(data), self.beat_bytes)
        beats = whole + (rest > 0)
        if beats:
            self.data += bytes(data) + bytes(beats * self.beat_bytes - len(data))
            self.keep += [True] * whole + [False] * (rest > 0)
            self.last += [False] * (beats - 1) + [last]
            self.strobes += [self.beat_bytes] * whole + [rest] * (rest > 0)

    def push_beats(self, data: bytes, last: np.ndarray) -> None:
        """Whole beats with a TLAST flag each (what the accelerator writes)."""
        self.data += bytes(data)
        self.keep += [True] * len(last)
        self.last += [bool(x) for x in last]
        self.strobes += [self.beat_bytes] * len(last)

    def take(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The first ``n`` beats: (n, beat_bytes) TDATA, (n,) TKEEP all ones, (n,) TLAST."""
        nbytes = n * self.beat_bytes
        data = np.frombuffer(bytes(self.data[:nbytes]), dtype=np.uint8).reshape(n, self.beat_bytes)
        keep, last = np.array(self.keep[:n], dtype=bool), np.array(self.last[:n], dtype=bool)
        del self.data[:nbytes], self.keep[:n], self.last[:n], self.strobes[:n]
        return data, keep, last

    def take_packets(self) -> list[tuple[bytes, list[int] | None]]:
        """Every whole packet held (beats up to a TLAST), as (TDATA bytes, per-byte TKEEP or None when all set).

        Why: a bus model of the stream (cocotbext-axi's ``AxiStreamSource``,
        ``bnnflow.sim.board_cosim``) sends packets, with TKEEP per byte as the
        AXI DMA drives it. Beats after the last TLAST stay held.
        """
        packets = []
        while True in self.last:
            n = self.last.index(True) + 1
            strobes = self.strobes[:n]
            data, _, _ = self.take(n)
            keep = None
            if any(s != self.beat_bytes for s in strobes):
                keep = [int(i < s) for s in strobes for i in range(self.beat_bytes)]
            packets.append((data.tobytes(), keep))
        return packets

    def take_packet(self, limit: int) -> tuple[bytes, bool]:
        """Up to ``limit`` beats, stopping after a TLAST; and whether they end with TLAST."""
        n = min(limit, len(self))
        ends = [i for i in range(n) if self.last[i]]
        if ends:
            n = ends[0] + 1
        data, _, last = self.take(n)
        return data.tobytes(), bool(n and last[-1])


class _DmaChannel:
    def __init__(self, receive: bool):
        self.receive = receive
        self.control = 0
        self.status = SR_HALTED
        self.address = 0
        self.length = 0
        self.busy = False
        self.received = bytearray()

    def write(self, offset: int, value: int) -> int | None:
        if offset == DMACR:
            self.control = value
            if value & 1:
                self.status &= ~SR_HALTED
            else:
                self.status = (self.status | SR_HALTED) & ~SR_IDLE
                self.busy = False
        elif offset == DMASR:
            self.status &= ~(value & SR_IOC)  # write 1 to clear the interrupt flag
        elif offset == ADDR:
            self.address = (self.address & ~0xFFFFFFFF) | value
        elif offset == ADDR_MSB:
            self.address = (self.address & 0xFFFFFFFF) | (value << 32)
        elif offset == LENGTH:
            if self.status & SR_HALTED:
                return None
            if value == 0:
                self.status |= SR_INT_ERR | SR_HALTED
                return None
            self.length, self.busy, self.received = value, True, bytearray()
            self.status &= ~(SR_IDLE | SR_IOC)
            return value
        return None

    def read(self, offset: int) -> int:
        return {DMACR: self.control, DMASR: self.status, ADDR: self.address & 0xFFFFFFFF,
                ADDR_MSB: self.address >> 32, LENGTH: self.length}.get(offset, 0)

    def finish(self, length: int | None = None, error: int = 0) -> None:
        self.busy = False
        if length is not None:
            self.length = length
        self.status |= (error | SR_HALTED) if error else (SR_IDLE | SR_IOC)


class SimDevice(pynq.Device):
    """A PYNQ device with an AXI DMA and a bnnflow accelerator simulated in numpy.

    ``artifact`` is what the accelerator is built for: its hardware signature
    and its power-on parameters. ``engine`` maps (N, F) int64 images to (N, C)
    scores; None (the default) is the golden model of the accelerator's
    memories, which follows every load. A given engine computes with fixed
    parameters, so a load-mode run on such a device is refused.
    ``dma_data_width`` (bits) is the DMA's memory-map width (the alignment
    pynq's DMA driver checks), ``length_width`` its buffer-length register
    width (max transfer ``2**length_width - 1`` bytes).
    """

    capabilities = {"REGISTER_RW": True}

    def __init__(self, artifact: art.Artifact, engine: Callable[[np.ndarray], np.ndarray] | None = None,
                 dma_data_width: int = 64, length_width: int = 26):
        engine = opt.check_callable("engine", engine)
        self.dma_data_width = opt.check_choice("dma_data_width", dma_data_width, DMA_DATA_WIDTHS)
        self.length_width = opt.check_int("length_width", length_width, *LENGTH_WIDTHS)
        super().__init__("bnnflow-simulated-board")
        self.artifact = artifact
        self.in_stream, self.out_stream = accel.input_stream(artifact), accel.output_stream(artifact)
        self.in_port, self.out_port = dma_layout.input_port(artifact), dma_layout.output_port(artifact)
        #: What the accelerator's weight and threshold memories hold (the artifact until a load).
        self.parameters: art.Artifact = artifact
        self.custom_engine = engine is not None
        self.engine = engine or GoldenModel(artifact).scores
        self.mm2s, self.s2mm = _DmaChannel(receive=False), _DmaChannel(receive=True)
        self.to_engine = _BeatStream(self.in_stream.beat_bytes)
        self.from_engine = _BeatStream(self.out_stream.beat_bytes)
        # accelerator registers
        self.ap_start = self.ap_done = self.ap_ready = False
        self.reps = self.mode = 0
        self.signature_register = self.status_register = 0
        self.signature_valid = self.status_valid = False
        self.interrupt_registers = {accel.GIE: 0, accel.IER: 0, accel.ISR: 0}
        self._run: tuple[int, int] | None = None  # (reps, mode) latched at ap_start
        self._taken: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # input beats of the current run
        self.runs = 0
        self.loads = 0
        self.register_log: list[tuple[str, int, int]] = []  # (r/w, address, value) of the accelerator
        self._memory: list[tuple[int, np.ndarray]] = []
        self._next_address = MEM_BASE
        self._faults: list[tuple[int, int]] = []

    # -- pynq.Device interface ---------------------------------------------------------
    def allocate(self, shape, dtype, **kwargs) -> PynqBuffer:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        backing = np.zeros(max(nbytes, 1), dtype=np.uint8)
        address = self._next_address
        self._next_address += -(-max(nbytes, 1) // PAGE) * PAGE
        self._memory.append((address, backing))
        return PynqBuffer(shape, dtype, buffer=backing, device=self, device_address=address, coherent=True)

    def flush(self, *args) -> None:
        pass

    def invalidate(self, *args) -> None:
        pass

    def read_registers(self, address: int, length: int) -> bytes:
        self._step()
        if DMA_BASE <= address < DMA_BASE + 0x10000:
            value = self._channel_at(address - DMA_BASE)[0].read((address - DMA_BASE) % 0x30)
        elif ACCEL_BASE <= address < ACCEL_BASE + 0x10000:
            value = self._accel_read(address - ACCEL_BASE)
            self.register_log.append(("r", address - ACCEL_BASE, value))
        else:
            raise MemoryError(f"simulated board: no register at 0x{address:x}")
        return int(value & (1 << 8 * length) - 1).to_bytes(length, "little")

    def write_registers(self, address: int, data: bytes) -> None:
        value = int.from_bytes(bytes(data), "little")
        if DMA_BASE <= address < DMA_BASE + 0x10000:
            channel, base = self._channel_at(address - DMA_BASE)
            if channel.write(address - DMA_BASE - base, value) is not None and not channel.receive:
                self._start_mm2s()
        elif ACCEL_BASE <= address < ACCEL_BASE + 0x10000:
            self.register_log.append(("w", address - ACCEL_BASE, value))
            self._accel_write(address - ACCEL_BASE, value)
        else:
            raise MemoryError(f"simulated board: no register at 0x{address:x}")
        self._step()

    def close(self) -> None:
        """Release what the device holds (nothing for the numpy model; the simulator for the RTL one)."""

    # -- fault injection ------------------------------------------------------------------
    def corrupt_next_transfer(self, byte: int, mask: int) -> None:
        """XOR ``mask`` into byte ``byte`` of the next MM2S transfer on its way into the accelerator.

        Why: a fault between memory and accelerator (or a driver bug) that
        sets a padding bit is what the accelerator's format check is for; this
        lets tests see it reach the driver as a STATUS error.
        """
        if not 0 <= mask <= 0xFF or byte < 0:
            raise ValueError(f"byte={byte}, mask={mask}: expected a byte offset >= 0 and a mask in 0..255")
        self._faults.append((int(byte), int(mask)))

    # -- the block design -------------------------------------------------------------
    def descriptions(self, ip: str = "hls") -> dict[str, dict]:
        """``ip_dict`` entries, as pynq would parse them from the block design's .hwh (``ip``: an ACCEL_IPS key)."""
        width = str(self.dma_data_width)
        accel_ip_info = ACCEL_IPS[ip]
        return {
            DEFAULT_DMA: {
                "fullpath": DEFAULT_DMA, "type": "xilinx.com:ip:axi_dma:7.1", "phys_addr": DMA_BASE,
                "addr_range": 0x10000, "device": self, "interrupts": {}, "gpio": {},
                "parameters": {"c_include_sg": "0", "c_micro_dma": "0", "c_sg_length_width": str(self.length_width),
                               "c_include_mm2s": "1", "c_include_s2mm": "1", "c_include_mm2s_dre": "0",
                               "c_include_s2mm_dre": "0", "c_m_axi_mm2s_data_width": width,
                               "c_m_axi_s2mm_data_width": width,
                               "c_m_axis_mm2s_tdata_width": str(self.in_stream.beat_bits),
                               "c_s_axis_s2mm_tdata_width": str(self.out_stream.beat_bits)},
            },
            accel_ip_info.instance: {
                "fullpath": accel_ip_info.instance, "type": accel_ip_info.vlnv, "phys_addr": ACCEL_BASE,
                "addr_range": 0x10000, "device": self, "interrupts": {}, "gpio": {}, "parameters": {},
            },
        }

    @contextlib.contextmanager
    def activate(self):
        """Make this ``pynq.Device.active_device`` inside the block (restored afterwards)."""
        had = "_active_device" in vars(pynq.Device)
        previous = vars(pynq.Device).get("_active_device")
        pynq.Device.active_device = self
        try:
            yield self
        finally:
            if had:
                pynq.Device.active_device = previous
            else:
                del pynq.Device._active_device

    # -- models ---------------------------------------------------------------------------
    def _channel_at(self, offset: int) -> tuple[_DmaChannel, int]:
        return (self.s2mm, 0x30) if offset >= 0x30 else (self.mm2s, 0)

    def _memory_at(self, address: int, nbytes: int) -> np.ndarray | None:
        for base, backing in self._memory:
            if base <= address and address + nbytes <= base + backing.size:
                return backing[address - base:address - base + nbytes]
        return None

    def _start_mm2s(self) -> None:
        ch = self.mm2s
        if ch.address % (self.dma_data_width // 8):
            ch.finish(error=SR_INT_ERR)  # no DRE: unaligned source
            return
        memory = self._memory_at(ch.address, ch.length)
        if memory is None:
            ch.finish(error=SR_DEC_ERR)
            return
        data = bytearray(memory.tobytes())
        for byte, mask in self._faults:
            if byte < len(data):
                data[byte] ^= mask
        self._faults = []
        self.to_engine.push(bytes(data), last=True)  # the DMA sets TLAST on a transfer's last beat

    def _accel_read(self, offset: int) -> int:
        if offset == accel.CTRL:
            value = (self.ap_start * accel.AP_START | self.ap_done * accel.AP_DONE
                     | (not self.ap_start) * accel.AP_IDLE | self.ap_ready * accel.AP_READY)
            self.ap_done = self.ap_ready = False  # clear on read
            return value
        if offset == accel.REPS:
            return self.reps
        if offset == accel.MODE:
            return self.mode
        if offset == accel.SIGNATURE:
            return self.signature_register
        if offset == accel.STATUS:
            return self.status_register
        if offset == accel.SIGNATURE_CTRL:
            value, self.signature_valid = self.signature_valid * accel.AP_VLD, False  # clear on read
            return value
        if offset == accel.STATUS_CTRL:
            value, self.status_valid = self.status_valid * accel.AP_VLD, False
            return value
        return self.interrupt_registers.get(offset, 0)

    def _accel_write(self, offset: int, value: int) -> None:
        if offset == accel.CTRL and value & accel.AP_START and not self.ap_start:
            self.ap_start = True
            self._run = (self.reps, self.mode)
        elif offset == accel.REPS:
            self.reps = value
        elif offset == accel.MODE:
            self.mode = value
        elif offset in (accel.GIE, accel.IER):
            self.interrupt_registers[offset] = value
        elif offset == accel.ISR:
            self.interrupt_registers[offset] ^= value  # toggle on write

    def _step(self) -> None:
        """Advance the streams as far as they go: DMA -> accelerator -> DMA."""
        self._step_accelerator()
        self._step_dma()

    def _step_accelerator(self) -> None:
        """The accelerator's part of a step: a started run takes its input beats and writes its output beats.

        A hook: ``bnnflow.sim.board_cosim.RtlSimDevice`` replaces it (and the
        register reads and writes) with the generated RTL in a simulator.
        """
        if self.ap_start and self._run is not None:
            reps, mode = self._run
            if mode == accel.MODE_INFER:
                self._infer(reps)
            elif mode == accel.MODE_LOAD:
                self._load()
            else:
                self._finish(accel.STATUS_BAD_MODE)  # consumes nothing

    def _mm2s_drained(self) -> bool:
        """Whether the accelerator has taken every beat of the MM2S transfer (the channel may finish)."""
        return not len(self.to_engine)

    def _step_dma(self) -> None:
        """The DMA's part of a step: MM2S finishes once drained, S2MM writes a packet up to its TLAST."""
        if self.mm2s.busy and self._mm2s_drained():
            self.mm2s.finish()
        ch = self.s2mm
        if ch.busy and len(self.from_engine):
            room = -(-(ch.length - len(ch.received)) // self.out_stream.beat_bytes)
            chunk, last = self.from_engine.take_packet(room + 1)
            ch.received += chunk
            if len(ch.received) > ch.length:
                ch.finish(error=SR_INT_ERR)  # the packet is longer than the buffer
            elif last:
                memory = self._memory_at(ch.address, len(ch.received))
                if memory is None:
                    ch.finish(error=SR_DEC_ERR)
                else:
                    memory[:] = np.frombuffer(bytes(ch.received), dtype=np.uint8)
                    ch.finish(length=len(ch.received))

    def _format_error(self, beats: np.ndarray, keep: np.ndarray, word_bits: int, beats_per_word: int) -> bool:
        return bool(not keep.all() or accel.padding_set(beats, word_bits, beats_per_word).any())

    def _consume(self, need: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Take input beats as they arrive (TREADY is high during a run); all ``need`` of them once there."""
        have = sum(len(part[2]) for part in self._taken)
        if have < need and len(self.to_engine):
            self._taken.append(self.to_engine.take(min(need - have, len(self.to_engine))))
            have = sum(len(part[2]) for part in self._taken)
        if have < need:
            return None  # waiting for the DMA
        parts, self._taken = self._taken, []
        if not parts:
            return (np.zeros((0, self.in_stream.beat_bytes), np.uint8), np.zeros(0, bool), np.zeros(0, bool))
        return tuple(np.concatenate([part[i] for part in parts]) for i in range(3))

    def _infer(self, reps: int) -> None:
        bpw, words = self.in_stream.beats_per_word, self.in_stream.words_per_image
        need = reps * words * bpw
        taken = self._consume(need)
        if taken is None:
            return
        status = 0
        if reps:  # reps = 0: nothing is read or written, only signature and status
            beats, keep, last = taken
            if self._format_error(beats, keep, self.in_stream.word_bits, bpw):
                status |= accel.STATUS_FORMAT_ERROR
            images = dma_layout.unpack_images(self.artifact, beats.reshape(-1), self.in_port)  # padding dropped
            scores = self.engine(images)
            out = dma_layout.pack_scores(self.artifact, scores, self.out_port)
            out_beats = out.size // self.out_stream.beat_bytes
            out_last = np.zeros(out_beats, dtype=bool)
            # an image's last output beat has TLAST exactly when its last input beat had
            if np.shape(scores)[0] == reps:
                out_last[np.arange(1, reps + 1) * (out_beats // reps) - 1] = last.reshape(reps, words * bpw)[:, -1]
            elif out_beats:  # an engine that is not the network's (tests of the driver's checks): TLAST at its end
                out_last[-1] = last[-1]
            self.from_engine.push_beats(out.tobytes(), out_last)
        self._finish(status)

    def _load(self) -> None:
        if self.custom_engine:
            raise RuntimeError("simulated board: a load-mode run on a device with a custom engine (it computes "
                               "with fixed parameters); use the default engine (engine=None) to load parameters")
        taken = self._consume(accel.param_beats(self.artifact))
        if taken is None:
            return
        beats, keep, last = taken
        status = 0
        if last[:-1].any() or not last[-1]:
            status |= accel.STATUS_LOAD_LENGTH_ERROR
        row = 0
        format_error = not keep.all()
        for segment in accel.param_segments(self.artifact):
            part = beats[row:row + segment.beats]
            row += segment.beats
            format_error |= bool(accel.padding_set(part, segment.word_bits, segment.beats_per_word).any())
        if format_error:
            status |= accel.STATUS_FORMAT_ERROR
        # the words are written whatever the checks say, as in the hardware
        self.parameters = accel.loaded_artifact(self.artifact, beats)
        self.engine = GoldenModel(self.parameters).scores
        self.loads += 1
        self._finish(status)

    def _finish(self, status: int) -> None:
        self.signature_register, self.signature_valid = self.artifact.signature, True
        self.status_register, self.status_valid = status, True
        self.ap_start, self.ap_done, self.ap_ready = False, True, True
        self._run = None
        self.runs += 1


class SimOverlay:
    """What ``pynq.Overlay`` would give for the bnnflow block design, on a :class:`SimDevice`.

    ``ip`` picks the accelerator (a ``bnnflow.vivado.ACCEL_IPS`` key: the HLS
    or the Verilog engine's VLNV and instance name); ``bitfile_name`` is the
    bitstream path a real overlay would report (the driver looks for its
    ``.signature.json`` beside it).
    """

    def __init__(self, device: SimDevice, ip: str = "hls", bitfile_name: str | None = None):
        self.device = device
        self.bitfile_name = bitfile_name
        self.ip_dict = device.descriptions(ip)
        setattr(self, DEFAULT_DMA, DMA(self.ip_dict[DEFAULT_DMA]))
        instance = ACCEL_IPS[ip].instance
        setattr(self, instance, accel_ip.BnnflowAccel(self.ip_dict[instance]))


#: The ``engine`` value that puts the generated Verilog, simulated, behind the device (``bnnflow.sim.board_cosim``).
RTL_ENGINE = "rtl"
#: ``timeout_s`` when not given: the board's 10 s for the numpy model; for the RTL, whose simulated cycles take
#: wall-clock time (Icarus runs about a thousand a second here), long enough for a batch of thousands of images.
DEFAULT_TIMEOUT_S = 10.0
RTL_TIMEOUT_S = 300.0
#: ``timeout_s`` not given (None stays an invalid value, as for ``board``).
_ENGINE_TIMEOUT: Any = object()


def make_device(artifact: art.Artifact, engine: Any = None, dma_data_width: int = 64,
                length_width: int = 26) -> SimDevice:
    """The simulated board for an ``engine`` option value.

    None or a callable: :class:`SimDevice`, the numpy accelerator model.
    ``"rtl"`` (Verilator) or a ``bnnflow.sim.board_cosim.RtlCosim(sim=...)``:
    ``bnnflow.sim.board_cosim.RtlSimDevice``, the same DMA model in front of
    the export's generated ``bnnflow_accel`` in a simulator (the accelerator's
    registers and streams are the RTL's). Why one function: the
    ``board-sim`` backend takes both through its one ``engine`` option.
    """
    if engine is None or callable(engine):
        return SimDevice(artifact, engine=engine, dma_data_width=dma_data_width, length_width=length_width)
    expected = (f"expected a callable (images (N, F) -> scores (N, C)), None (the golden model), {RTL_ENGINE!r} "
                "(the generated Verilog simulated by Verilator) or bnnflow.sim.board_cosim.RtlCosim(sim=...)")
    if isinstance(engine, str) and engine != RTL_ENGINE:
        raise TypeError(f"option engine={engine!r} (str): {expected}")
    from bnnflow.sim import board_cosim  # only now: the RTL co-simulation needs the simulation flow

    if engine == RTL_ENGINE:
        engine = board_cosim.RtlCosim()
    if not isinstance(engine, board_cosim.RtlCosim):
        raise TypeError(f"option engine={engine!r} ({type(engine).__name__}): {expected}")
    return board_cosim.RtlSimDevice(artifact, engine, dma_data_width=dma_data_width, length_width=length_width)


class SimulatedBoardBackend(BoardBackend):
    """The ``board`` backend over a :class:`SimDevice` (backend name ``board-sim``).

    ``engine`` picks what computes behind the simulated DMA (:func:`make_device`):
    the numpy model (None, or a callable with fixed parameters) or the
    generated RTL in a simulator (``"rtl"``, ``RtlCosim(...)``). ``timeout_s``
    not given is :data:`DEFAULT_TIMEOUT_S`, or :data:`RTL_TIMEOUT_S` with the RTL.
    """

    name = "board-sim"
    OPTIONS = SIM_OPTIONS

    def __init__(self, artifact: art.Artifact, engine=None, dma_data_width: int = 64, length_width: int = 26,
                 accel_name: str | None = None, dma_name: str = DEFAULT_DMA, timeout_s: float = _ENGINE_TIMEOUT,
                 max_batch: int | None = None):
        if timeout_s is _ENGINE_TIMEOUT:  # the driver's waits are wall-clock time; a simulated RTL needs more of it
            timeout_s = DEFAULT_TIMEOUT_S if engine is None or callable(engine) else RTL_TIMEOUT_S
        # the board options first (no device is made for a bad one), then the device's own
        BoardBackend.check_options(accel_name=accel_name, dma_name=dma_name, timeout_s=timeout_s,
                                   max_batch=max_batch)
        self.device = make_device(artifact, engine, dma_data_width=dma_data_width, length_width=length_width)
        try:
            super().__init__(artifact, overlay=SimOverlay(self.device), accel_name=accel_name, dma_name=dma_name,
                             timeout_s=timeout_s, max_batch=max_batch)
        except BaseException:
            self.device.close()  # e.g. a signature mismatch: no simulator is left running
            raise

    def load(self, artifact: art.Artifact) -> dict[str, Any]:
        if self.device.custom_engine:
            raise BoardError("board-sim with a custom engine computes with fixed parameters and cannot load "
                             f"{artifact.root}; use the default engine (engine=None), the golden model of the "
                             "accelerator's memories")
        return super().load(artifact)

    def close(self) -> None:
        """Free the DMA buffers and, when the driver closes, the device (an RTL simulation ends)."""
        super().close()
        self.device.close()
