"""cocotb testbench of the generated accelerator ``bnnflow_accel`` (runs in the simulator).

The DUT is driven only through real bus models, as the board's PS and AXI DMA
would drive it: cocotbext-axi's ``AxiLiteMaster`` on ``s_axi_control`` (the
register map of docs/ACCEL.md, offsets from :mod:`bnnflow.accel`),
``AxiStreamSource`` on ``s_axis`` and ``AxiStreamSink`` on ``m_axis``, both
with TKEEP (one byte lane per TDATA byte). Images and scores travel as the
bytes of DMA buffers (:func:`bnnflow.packing.pack_vectors` /
``unpack_vectors`` with :class:`bnnflow.accel.Stream`'s widths), parameters as
:func:`bnnflow.accel.param_stream`.

The config names scenarios, run in order in one simulation (the build is
the expensive part); each records what the hardware did in the result JSON
(scores, STATUS, the control register as polled, ...), which the pytest side
compares with the golden model and the contract. Every output beat is checked
here as it arrives: TKEEP all ones, padding bits zero, TLAST only at the end of
a frame; violations are listed under ``beat_errors``.

Config (JSON, path in $BNNFLOW_TB_CONFIG): artifact (the build's parameters,
the .mem files in the run directory), alt_artifact (same signature, other
parameters; optional), images (.npy), scenarios (list), seed, idle,
backpressure, timing_images, result.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamFrame, AxiStreamSink,
                           AxiStreamSource)

from bnnflow import accel
from bnnflow import artifact as art
from bnnflow import packing
from bnnflow.sim.tbutil import CLOCK_NS, load_config, pauses, write_result


class AccelHarness:
    """Clock, reset, the AXI4-Lite master and the two stream models of one ``bnnflow_accel``."""

    def __init__(self, dut, a: art.Artifact, seed: int):
        self.dut = dut
        self.a = a
        self.rng = random.Random(seed)
        self.inp, self.out = accel.input_stream(a), accel.output_stream(a)
        Clock(dut.ap_clk, CLOCK_NS, unit="ns").start()
        kw = dict(reset_active_level=False)
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk, dut.ap_rst_n, **kw)
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.ap_clk, dut.ap_rst_n, **kw)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.ap_clk, dut.ap_rst_n, **kw)
        for model in (self.axil.write_if, self.axil.read_if, self.source, self.sink):
            model.log.setLevel(logging.WARNING)
        self.cycle = 0
        self.beat_cycles: list[int] = []        # cycle of every output beat (TVALID & TREADY)
        self.beat_errors: list[str] = []
        self.last_run_beat_cycles: list[int] = []
        self.write_order = {"aw_first": 0, "w_first": 0, "together": 0}   # how AW and W reached the slave

    async def reset(self) -> None:
        self.dut.ap_rst_n.value = 0
        await ClockCycles(self.dut.ap_clk, 4)
        self.dut.ap_rst_n.value = 1
        await RisingEdge(self.dut.ap_clk)
        cocotb.start_soon(self._monitor())

    async def _monitor(self) -> None:
        """Count cycles; check every output beat's TKEEP, padding and TLAST as it is taken."""
        dut, out = self.dut, self.out
        keep_all = (1 << out.beat_bytes) - 1
        pad_bits = out.word_bits - (out.beats_per_word - 1) * out.beat_bits   # word bits in a word's last beat
        beat = 0
        held = None                            # "aw" or "w": the half of a write the slave took first
        while True:
            await RisingEdge(dut.ap_clk)
            self.cycle += 1
            aw = int(dut.s_axi_control_AWVALID.value) and int(dut.s_axi_control_AWREADY.value)
            w = int(dut.s_axi_control_WVALID.value) and int(dut.s_axi_control_WREADY.value)
            if aw and w:
                self.write_order["together"] += 1
            elif aw or w:
                if held is None:
                    held = "aw" if aw else "w"
                else:
                    self.write_order[f"{held}_first"] += 1
                    held = None
            if not (int(dut.m_axis_tvalid.value) and int(dut.m_axis_tready.value)):
                continue
            self.beat_cycles.append(self.cycle)
            tkeep, tdata, tlast = int(dut.m_axis_tkeep.value), int(dut.m_axis_tdata.value), int(dut.m_axis_tlast.value)
            last_of_word = beat == out.beats_per_word - 1
            where = f"output beat {len(self.beat_cycles) - 1} (beat {beat} of its word)"
            if tkeep != keep_all:
                self.beat_errors.append(f"{where}: TKEEP 0x{tkeep:x}, expected all ones")
            if last_of_word and tdata >> pad_bits:
                self.beat_errors.append(f"{where}: padding bits above bit {pad_bits - 1} are 0x{tdata >> pad_bits:x}")
            if tlast and not last_of_word:
                self.beat_errors.append(f"{where}: TLAST inside a word")
            beat = 0 if last_of_word else beat + 1

    # -- registers ---------------------------------------------------------------
    async def read(self, address: int) -> int:
        return await self.axil.read_dword(address)

    async def write(self, address: int, value: int) -> None:
        await self.axil.write_dword(address, value)

    async def start(self, reps: int, mode: int, control: int = accel.AP_START) -> None:
        await self.write(accel.REPS, reps)
        await self.write(accel.MODE, mode)
        await self.write(accel.CTRL, control)

    async def wait_done(self, budget: int, label: str) -> dict[str, Any]:
        """Poll CTRL as the driver does until ap_done or ap_idle; then read it once more and the results.

        Returns the control values seen while running, the completing read,
        the read after it, and STATUS / SIGNATURE with their ap_vld bits read
        before and after (clear on read).
        """
        start = self.cycle
        running = set()
        while True:
            value = await self.read(accel.CTRL)
            if value & (accel.AP_DONE | accel.AP_IDLE):
                break
            running.add(value)
            if self.cycle - start > budget:
                raise AssertionError(f"{label}: no ap_done/ap_idle after {budget} cycles (CTRL 0x{value:02x}, "
                                     f"{len(self.beat_cycles)} output beats so far)")
            await ClockCycles(self.dut.ap_clk, 4)
        record = {"running": sorted(running), "done": value, "after": await self.read(accel.CTRL)}
        record["status_vld"] = [await self.read(accel.STATUS_CTRL)]
        record["status"] = await self.read(accel.STATUS)
        record["status_vld"].append(await self.read(accel.STATUS_CTRL))
        record["signature_vld"] = [await self.read(accel.SIGNATURE_CTRL)]
        record["signature"] = await self.read(accel.SIGNATURE)
        record["signature_vld"].append(await self.read(accel.SIGNATURE_CTRL))
        return record

    def budget(self, images: int, slow: float = 1.0) -> int:
        model = max(l.cycles_per_image for l in self.a.layers)   # NF*SF (x pixels for a conv)
        per_image = max(model, self.inp.words_per_image * self.inp.beats_per_word,
                        self.out.words_per_image * self.out.beats_per_word)
        return 3000 + int(images * per_image * 3 * slow) + 64 * images

    # -- streams -------------------------------------------------------------------
    def image_bytes(self, images: np.ndarray) -> np.ndarray:
        """(N, F) images -> (N, bytes per image): the MM2S buffer, one row per image."""
        first = self.a.layers[0]
        return packing.pack_vectors(images, first.simd, first.input_bits, self.inp.word_bytes)

    def random_on(self, idle: float, backpressure: float) -> None:
        self.source.set_pause_generator(pauses(self.rng, idle) if idle > 0 else None)
        self.sink.set_pause_generator(pauses(self.rng, backpressure) if backpressure > 0 else None)

    def random_off(self) -> None:
        for port in (self.source, self.sink):
            port.clear_pause_generator()
            port.pause = False

    def collect(self) -> list[AxiStreamFrame]:
        frames = []
        while not self.sink.empty():
            frames.append(self.sink.recv_nowait(compact=False))
        return frames

    def scores_of(self, frames: list[AxiStreamFrame], scores_for: art.Artifact) -> np.ndarray:
        """The S2MM buffer (the frames' bytes back to back) as (N, classes) scores."""
        data = np.frombuffer(b"".join(bytes(f.tdata) for f in frames), dtype=np.uint8)
        n = data.size // self.out.bytes_per_image
        last = scores_for.layers[-1]
        return packing.unpack_vectors(data, n, scores_for.num_classes, last.pe, last.output_bits,
                                      self.out.word_bytes, signed=last.output_signed)

    async def infer(self, images: np.ndarray, label: str, *, groups: list[int] | None = None,
                    corrupt=None, control: int = accel.AP_START, data_first: bool = False) -> dict[str, Any]:
        """One infer run of ``len(images)`` images sent as frames of ``groups`` images; the record of it.

        ``corrupt(frames)`` may replace frames before they are sent.
        ``data_first``: offer the data 32 cycles before ap_start and record
        whether s_axis_tready rose in that time (it must not).
        """
        n = len(images)
        rows = self.image_bytes(images)
        groups = groups or [n]
        frames, k = [], 0
        for g in groups:
            frames.append(AxiStreamFrame(rows[k:k + g].tobytes()))
            k += g
        if corrupt is not None:
            corrupt(frames)
        record: dict[str, Any] = {}
        if data_first:
            for frame in frames:
                await self.source.send(frame)
            ready = 0
            for _ in range(32):
                await RisingEdge(self.dut.ap_clk)
                ready |= int(self.dut.s_axis_tready.value)
            record["tready_before_start"] = ready
        await self.start(n, accel.MODE_INFER, control)
        first_beat = len(self.beat_cycles)
        if not data_first:
            record["before_data"] = await self.read(accel.CTRL)   # the run cannot end before its data
            for frame in frames:
                await self.source.send(frame)
        record.update(await self.wait_done(self.budget(n, 8.0), label))
        out = self.collect()
        record["frame_images"] = [len(f.tdata) // self.out.bytes_per_image for f in out]
        record["frame_bytes"] = [len(f.tdata) for f in out]
        record["scores"] = self.scores_of(out, self.a).tolist()
        record["beats"] = len(self.beat_cycles) - first_beat
        self.last_run_beat_cycles = self.beat_cycles[first_beat:]
        return record

    async def load(self, params: np.ndarray, label: str, *, split: int | None = None) -> dict[str, Any]:
        """One load run of the parameter stream ``params`` ((beats, beat_bytes) uint8).

        ``split``: send the beats as two frames, the first ending (TLAST) after
        beat ``split - 1`` -- a stream of the right length whose TLAST is early.
        """
        data = params.tobytes()
        cut = len(data) if split is None else split * params.shape[1]
        await self.start(0, accel.MODE_LOAD)
        for part in (data[:cut], data[cut:]):
            if part:
                await self.source.send(AxiStreamFrame(part))
        record = await self.wait_done(self.budget(0) + 8 * params.shape[0], label)
        record["output_frames"] = len(self.collect())
        return record


#: An offset of the 6-bit register space that the map leaves free (reads 0).
UNMAPPED = 0x3C


async def sc_signature(h: AccelHarness, ctx: dict[str, Any]) -> dict[str, Any]:
    """Registers at reset, AXI4-Lite under random stalls, WSTRB, a read-only write, then a reps = 0 run."""
    rec = {"signature_at_reset": await h.read(accel.SIGNATURE), "ctrl_at_reset": await h.read(accel.CTRL),
           "unmapped": await h.read(UNMAPPED)}
    # random stalls on all five channels, so AW and W reach the slave in either order (and together),
    # two writes queued at once, reads after them
    channels = [h.axil.write_if.aw_channel, h.axil.write_if.w_channel, h.axil.write_if.b_channel,
                h.axil.read_if.ar_channel, h.axil.read_if.r_channel]
    for channel in channels:
        channel.set_pause_generator(pauses(h.rng, 0.5))
    mismatches = []
    for _ in range(12):
        values = {accel.REPS: h.rng.getrandbits(32), accel.MODE: h.rng.getrandbits(32)}
        writes = [cocotb.start_soon(h.write(address, value)) for address, value in values.items()]
        for task in writes:
            await task
        for address, value in values.items():
            got = await h.read(address)
            if got != value:
                mismatches.append(f"register 0x{address:02x}: wrote 0x{value:08x}, read 0x{got:08x}")
    for channel in channels:
        channel.clear_pause_generator()
        channel.pause = False
    rec["register_mismatches"] = mismatches
    rec["write_order"] = dict(h.write_order)
    await h.write(accel.REPS, 0x11223344)
    await h.axil.write_byte(accel.REPS + 2, 0xAB)        # WSTRB 0b0100: one byte of REPS
    await h.write(accel.MODE, 0x5A5A0001)
    rec["reps_strobed"], rec["mode_rw"] = await h.read(accel.REPS), await h.read(accel.MODE)
    await h.write(accel.SIGNATURE, 0x12345678)          # read-only: ignored
    await h.start(0, accel.MODE_INFER)
    rec.update(await h.wait_done(h.budget(0), "signature"))
    return rec


async def sc_interrupt(h: AccelHarness, ctx: dict[str, Any]) -> dict[str, Any]:
    """GIE + IER bit 0: ap_done raises ISR bit 0 and the pin; writing 1 to ISR toggles it back."""
    await h.write(accel.GIE, 1)
    await h.write(accel.IER, 1)
    await h.start(0, accel.MODE_INFER)
    rec = await h.wait_done(h.budget(0), "interrupt")
    rec["isr"], rec["irq_pin"] = await h.read(accel.ISR), int(h.dut.interrupt.value)
    await h.write(accel.ISR, 1)
    await ClockCycles(h.dut.ap_clk, 2)
    rec["isr_after"], rec["irq_pin_after"] = await h.read(accel.ISR), int(h.dut.interrupt.value)
    await h.write(accel.GIE, 0)
    await h.write(accel.IER, 0)
    return rec


async def sc_infer_random(h: AccelHarness, ctx: dict[str, Any]) -> dict[str, Any]:
    """All images with the power-on parameters, in packets of 1..4 images, random idle and backpressure."""
    images = ctx["images"]
    h.random_on(ctx["idle"], ctx["backpressure"])
    groups, left = [], len(images)
    while left:
        groups.append(min(left, h.rng.randint(1, 4)))
        left -= groups[-1]
    rec = await h.infer(images, "infer_random", groups=groups)
    rec["groups"] = groups
    h.random_off()
    return rec


async def sc_infer_timing(h: AccelHarness, ctx: dict[str, Any]) -> dict[str, Any]:
    """Back to back, one packet of at least timing_images images: the steady-state cycles per image."""
    images = ctx["images"]
    n, m = len(images), max(len(images), ctx["timing_images"])
    rec = await h.infer(images[[i % n for i in range(m)]], "infer_timing")
    per_image = h.out.words_per_image * h.out.beats_per_word
    done = h.last_run_beat_cycles[per_image - 1::per_image]       # cycle of each image's last beat
    k = m // 2
    rec["cycles_per_image"] = (done[-1] - done[k]) / (m - 1 - k)
    rec["images"] = m
    return rec


async def sc_format_padding(h: AccelHarness, ctx: dict[str, Any]) -> dict[str, Any]:
    """Two images, the top bit of image 0's first word set: a padding bit of the word's last beat."""
    if h.inp.word_bytes * 8 == h.inp.word_bits:
        return {"skipped": "the input words fill their beats: no padding bits"}

    def set_pad(frames: list[AxiStreamFrame]) -> None:
        data = bytearray(frames[0].tdata)
        data[h.inp.word_bytes - 1] |= 0x80
        frames[0] = AxiStreamFrame(bytes(data))
    return await h.infer(ctx["images"][:2], "format_padding", corrupt=set_pad)


async def sc_format_tkeep(h: AccelHarness, ctx: dict[str, Any]) -> dict[str, Any]:
    """Two images, TKEEP of byte 3 of the first beat clear (the data itself unchanged)."""
    def clear_keep(frames: list[AxiStreamFrame]) -> None:
        keep = [1] * len(frames[0].tdata)
        keep[3] = 0
        frames[0] = AxiStreamFrame(frames[0].tdata, tkeep=keep)
    return await h.infer(ctx["images"][:2], "format_tkeep", corrupt=clear_keep)


async def sc_infer_data_first(h: AccelHarness, ctx: dict[str, Any]) -> dict[str, Any]:
    """Three images offered before ap_start: s_axis_tready must stay low until the run starts."""
    return await h.infer(ctx["images"][:3], "infer_data_first", data_first=True)


async def sc_bad_mode(h: AccelHarness, ctx: dict[str, Any]) -> dict[str, Any]:
    """Mode 5: STATUS_BAD_MODE and nothing consumed (an infer run right after gets its image)."""
    await h.start(0, 5)
    rec = await h.wait_done(h.budget(0), "bad_mode")
    rec["then"] = await h.infer(ctx["images"][:1], "bad_mode then infer")
    return rec


async def _load_then_infer(h: AccelHarness, ctx: dict[str, Any], target: art.Artifact | None, label: str,
                           early_tlast: bool = False, idle: float = 0.0) -> dict[str, Any]:
    if target is None:
        raise ValueError(f"scenario {label} needs alt_artifact in the config")
    params = accel.param_stream(target)
    if early_tlast and params.shape[0] < 2:
        raise ValueError(f"{label}: the parameter stream has {params.shape[0]} beat(s); TLAST cannot come early")
    h.random_on(idle, 0.0)
    rec = await h.load(params, label, split=params.shape[0] - 1 if early_tlast else None)
    h.random_off()
    rec["param_beats"] = int(params.shape[0])
    rec["then"] = await h.infer(ctx["images"], label + " then infer")   # same shapes: decoding is the same
    return rec


async def sc_load_alt(h: AccelHarness, ctx: dict[str, Any]) -> dict[str, Any]:
    """The other artifact's parameter stream (random source idle), then all images."""
    return await _load_then_infer(h, ctx, ctx["alt"], "load_alt", idle=ctx["idle"])


async def sc_load_early_tlast(h: AccelHarness, ctx: dict[str, Any]) -> dict[str, Any]:
    """The build's own stream, TLAST also on the second-to-last beat: STATUS_LOAD_LENGTH_ERROR."""
    return await _load_then_infer(h, ctx, h.a, "load_early_tlast", early_tlast=True)


async def sc_load_own(h: AccelHarness, ctx: dict[str, Any]) -> dict[str, Any]:
    """The build's own stream, then all images."""
    return await _load_then_infer(h, ctx, h.a, "load_own")


async def sc_auto_restart(h: AccelHarness, ctx: dict[str, Any]) -> dict[str, Any]:
    """reps 2 with auto_restart: a second run starts by itself; clearing auto_restart lets it be the last."""
    rows = h.image_bytes(ctx["images"][:4])
    await h.start(2, accel.MODE_INFER, accel.AP_START | accel.AUTO_RESTART)
    await h.source.send(AxiStreamFrame(rows[:2].tobytes()))
    first_beat = len(h.beat_cycles)
    need = 2 * h.out.words_per_image * h.out.beats_per_word
    start = h.cycle
    while len(h.beat_cycles) - first_beat < need:
        if h.cycle - start > h.budget(2, 8.0):
            raise AssertionError("auto_restart: the first run's scores did not arrive")
        await ClockCycles(h.dut.ap_clk, 8)
    await ClockCycles(h.dut.ap_clk, 8)
    rec = {"ctrl_between": await h.read(accel.CTRL)}
    await h.write(accel.CTRL, 0)                 # auto_restart off; ap_start stays set until ap_ready
    rec["ctrl_after_clear"] = await h.read(accel.CTRL)
    await h.source.send(AxiStreamFrame(rows[2:4].tobytes()))
    rec.update(await h.wait_done(h.budget(2, 8.0), "auto_restart"))
    await ClockCycles(h.dut.ap_clk, 16)
    rec["ctrl_end"] = await h.read(accel.CTRL)
    rec["scores"] = h.scores_of(h.collect(), h.a).tolist()
    return rec


SCENARIOS = {
    "signature": sc_signature, "interrupt": sc_interrupt, "infer_random": sc_infer_random,
    "infer_timing": sc_infer_timing, "format_padding": sc_format_padding, "format_tkeep": sc_format_tkeep,
    "infer_data_first": sc_infer_data_first, "bad_mode": sc_bad_mode, "load_alt": sc_load_alt,
    "load_early_tlast": sc_load_early_tlast, "load_own": sc_load_own, "auto_restart": sc_auto_restart,
}


@cocotb.test()
async def accel_scenarios(dut):
    """The scenarios of the config, in order, against one accelerator build."""
    cfg = load_config()
    unknown = [name for name in cfg["scenarios"] if name not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; known: {sorted(SCENARIOS)}")
    a = art.load(cfg["artifact"])
    alt = art.load(cfg["alt_artifact"]) if cfg.get("alt_artifact") else None
    ctx = {"images": np.load(cfg["images"]), "alt": alt,
           "idle": float(cfg.get("idle", 0.0)), "backpressure": float(cfg.get("backpressure", 0.0)),
           "timing_images": int(cfg.get("timing_images", 12))}
    h = AccelHarness(dut, a, int(cfg.get("seed", 0)))
    await h.reset()
    records = {name: await SCENARIOS[name](h, ctx) for name in cfg["scenarios"]}
    write_result(cfg, {"scenarios": records, "beat_errors": h.beat_errors, "write_order": h.write_order,
                       "input_left": int(h.source.count())})
