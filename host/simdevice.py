"""A simulated PYNQ board: a ``pynq.Device`` whose registers and memory are numpy.

PYNQ's extension point for new hardware is a ``pynq.Device`` subclass. This
one declares the ``REGISTER_RW`` capability, so every ``pynq.MMIO`` access --
and with it ``DefaultIP``, the real AXI DMA driver (``pynq.lib.dma.DMA``) and
:class:`~bnnflow.host.accel_ip.BnnflowAccel` -- turns into
:meth:`SimDevice.read_registers` / :meth:`SimDevice.write_registers` calls,
which drive register-level models of the two IPs of the block design:

- an AXI DMA in simple (direct register) mode: MM2S and S2MM channels with
  DMACR/DMASR/address/LENGTH registers; the S2MM channel finishes at TLAST
  and reports the bytes it wrote in its LENGTH register;
- the ``bnnflow_top`` HLS IP with ap_ctrl_hs at 0x00 (ap_start, clear-on-read
  ap_done, ap_idle) and ``reps`` at 0x10, consuming exactly ``reps`` images
  from its input stream and forwarding the stream's TLAST to its output.

``allocate`` hands out ``pynq.buffer.PynqBuffer`` objects backed by numpy
memory at made-up physical addresses, which the DMA model reads and writes.
The engine's arithmetic is a callable (default: the golden model), so what
this exercises is the driver's side: the register protocol, the buffer byte
layout, TLAST and chunking -- not the RTL.

Nothing here is registered with pynq's device probing (no ``_probe_``): a
simulated device is used only when passed explicitly, or inside
:meth:`SimDevice.activate`, which makes it ``pynq.Device.active_device``.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np
import pynq
from pynq.buffer import PynqBuffer
from pynq.lib.dma import DMA

from bnnflow import artifact as art
from bnnflow.golden import GoldenModel

from . import accel_ip, dma_layout
from . import options as opt
from .backend_board import DEFAULT_ACCEL, DEFAULT_DMA, SIM_OPTIONS, BoardBackend

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


class _Stream:
    """An AXI4-Stream as a byte FIFO; ``ends`` holds the byte counts after which TLAST was set."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.ends: list[int] = []
        self.taken = 0  # bytes taken so far (positions in ``ends`` count from the stream's start)

    def push(self, data: bytes, last: bool) -> None:
        self.data += data
        if last:
            self.ends.append(self.taken + len(self.data))

    def take(self, n: int) -> tuple[bytes, bool]:
        """Up to ``n`` bytes, stopping after a TLAST; and whether the chunk ends with TLAST."""
        stop = self.taken + min(n, len(self.data))
        ends = [e for e in self.ends if self.taken < e <= stop]
        if ends:
            stop = ends[0]
        chunk = bytes(self.data[:stop - self.taken])
        del self.data[:len(chunk)]
        self.taken = stop
        self.ends = [e for e in self.ends if e > stop]
        return chunk, bool(ends)


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
    """A PYNQ device with an AXI DMA and a ``bnnflow_top`` IP simulated in numpy.

    ``engine`` maps (N, F) int64 images to (N, C) scores; it defaults to the
    artifact's golden model. ``dma_data_width`` (bits) is the DMA's memory-map
    width (the alignment pynq's DMA driver checks), ``length_width`` its
    buffer-length register width (max transfer ``2**length_width - 1`` bytes).
    """

    capabilities = {"REGISTER_RW": True}

    def __init__(self, artifact: art.Artifact, engine: Callable[[np.ndarray], np.ndarray] | None = None,
                 in_word_bytes: int | None = None, out_word_bytes: int | None = None,
                 dma_data_width: int = 64, length_width: int = 26):
        engine = opt.check_callable("engine", engine)
        self.in_port = dma_layout.input_port(artifact, in_word_bytes)
        self.out_port = dma_layout.output_port(artifact, out_word_bytes)
        self.dma_data_width = opt.check_choice("dma_data_width", dma_data_width, DMA_DATA_WIDTHS)
        self.length_width = opt.check_int("length_width", length_width, *LENGTH_WIDTHS)
        super().__init__("bnnflow-simulated-board")
        self.artifact = artifact
        self.engine = engine or GoldenModel(artifact).scores
        self.mm2s, self.s2mm = _DmaChannel(receive=False), _DmaChannel(receive=True)
        self.to_engine, self.from_engine = _Stream(), _Stream()
        # bnnflow_top state
        self.ap_start = self.ap_done = self.ap_ready = False
        self.reps = 0
        self.engine_input = bytearray()
        self.runs = 0
        self.register_log: list[tuple[str, int, int]] = []  # (r/w, address, value) of the accelerator
        self._memory: list[tuple[int, np.ndarray]] = []
        self._next_address = MEM_BASE

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

    # -- the block design -------------------------------------------------------------
    def descriptions(self) -> dict[str, dict]:
        """``ip_dict`` entries, as pynq would parse them from the block design's .hwh."""
        width = str(self.dma_data_width)
        return {
            DEFAULT_DMA: {
                "fullpath": DEFAULT_DMA, "type": "xilinx.com:ip:axi_dma:7.1", "phys_addr": DMA_BASE,
                "addr_range": 0x10000, "device": self, "interrupts": {}, "gpio": {},
                "parameters": {"c_include_sg": "0", "c_micro_dma": "0", "c_sg_length_width": str(self.length_width),
                               "c_include_mm2s": "1", "c_include_s2mm": "1", "c_include_mm2s_dre": "0",
                               "c_include_s2mm_dre": "0", "c_m_axi_mm2s_data_width": width,
                               "c_m_axi_s2mm_data_width": width},
            },
            DEFAULT_ACCEL: {
                "fullpath": DEFAULT_ACCEL, "type": accel_ip.VLNV, "phys_addr": ACCEL_BASE,
                "addr_range": 0x10000, "device": self, "interrupts": {}, "gpio": {},
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
        self.to_engine.push(memory.tobytes(), last=True)  # the DMA sets TLAST on a transfer's last beat

    def _accel_read(self, offset: int) -> int:
        if offset == accel_ip.CTRL:
            value = (self.ap_start * accel_ip.AP_START | self.ap_done * accel_ip.AP_DONE
                     | (not self.ap_start) * accel_ip.AP_IDLE | self.ap_ready * accel_ip.AP_READY)
            self.ap_done = self.ap_ready = False  # clear on read
            return value
        if offset == accel_ip.REPS:
            return self.reps
        return 0

    def _accel_write(self, offset: int, value: int) -> None:
        if offset == accel_ip.CTRL and value & accel_ip.AP_START and not self.ap_start:
            self.ap_start, self.engine_input = True, bytearray()
        elif offset == accel_ip.REPS and not self.ap_start:
            self.reps = value

    def _step(self) -> None:
        """Advance the streams as far as they go: DMA -> engine -> DMA."""
        if self.ap_start:
            need = self.reps * self.in_port.bytes_per_image - len(self.engine_input)
            chunk, last = self.to_engine.take(need) if need > 0 else (b"", False)
            self.engine_input += chunk
            if len(self.engine_input) == self.reps * self.in_port.bytes_per_image:
                self._compute(last_in=last)
        if self.mm2s.busy and not self.to_engine.data:
            self.mm2s.finish()
        ch = self.s2mm
        if ch.busy and self.from_engine.data:
            chunk, last = self.from_engine.take(ch.length - len(ch.received) + 1)
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

    def _compute(self, last_in: bool) -> None:
        if self.reps:  # reps = 0: the HLS loops run zero times, nothing is read or written
            images = dma_layout.unpack_images(self.artifact, np.frombuffer(bytes(self.engine_input), np.uint8),
                                              self.in_port)
            scores = self.engine(images)
            self.from_engine.push(dma_layout.pack_scores(self.artifact, scores, self.out_port).tobytes(),
                                  last=last_in)
        self.ap_start, self.ap_done, self.ap_ready = False, True, True
        self.runs += 1


class SimOverlay:
    """What ``pynq.Overlay`` would give for the bnnflow block design, on a :class:`SimDevice`."""

    def __init__(self, device: SimDevice):
        self.device = device
        self.ip_dict = device.descriptions()
        setattr(self, DEFAULT_DMA, DMA(self.ip_dict[DEFAULT_DMA]))
        setattr(self, DEFAULT_ACCEL, accel_ip.BnnflowAccel(self.ip_dict[DEFAULT_ACCEL]))


class SimulatedBoardBackend(BoardBackend):
    """The ``board`` backend over a :class:`SimDevice` (backend name ``board-sim``)."""

    name = "board-sim"
    OPTIONS = SIM_OPTIONS

    def __init__(self, artifact: art.Artifact, engine=None, dma_data_width: int = 64, length_width: int = 26,
                 in_word_bytes: int | None = None, out_word_bytes: int | None = None,
                 accel_name: str = DEFAULT_ACCEL, dma_name: str = DEFAULT_DMA, timeout_s: float = 10.0,
                 max_batch: int | None = None):
        # the board options first (no device is made for a bad one), then the device's own
        BoardBackend.check_options(accel_name=accel_name, dma_name=dma_name, timeout_s=timeout_s,
                                   max_batch=max_batch)
        self.device = SimDevice(artifact, engine=engine, in_word_bytes=in_word_bytes, out_word_bytes=out_word_bytes,
                                dma_data_width=dma_data_width, length_width=length_width)
        super().__init__(artifact, overlay=SimOverlay(self.device), accel_name=accel_name, dma_name=dma_name,
                         in_word_bytes=in_word_bytes, out_word_bytes=out_word_bytes, timeout_s=timeout_s,
                         max_batch=max_batch)
