"""Shared cocotb testbench pieces (runs inside the simulator).

:func:`run_stream_test` drives a DUT that maps vectors of s_axis words to
vectors of m_axis words (an MVTU, a repacker, the network top) and checks every
output word and its TLAST against expectations computed from the golden model:

1. random phase (optional): random idle cycles on the source and random
   backpressure on the sink (seeded pause generators); vectors are grouped into
   frames of 1..4 vectors, so TLAST must appear exactly on the last word of
   each frame's last vector;
2. timing phase: no idle, no backpressure, all vectors in one frame; the cycle
   at which each output vector completes gives the steady-state cycles per
   vector (mean interval over the second half of the phase).
"""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

CONFIG_ENV = "BNNFLOW_TB_CONFIG"
CLOCK_NS = 10


def load_config() -> dict[str, Any]:
    path = os.environ.get(CONFIG_ENV) or "tb_config.json"
    return json.loads(Path(path).read_text())


def write_result(cfg: dict[str, Any], result: dict[str, Any]) -> None:
    Path(cfg["result"]).write_text(json.dumps(result))


def pauses(rng: random.Random, probability: float):
    """Endless pause pattern: True (pause this cycle) with ``probability``, in bursts."""
    while True:
        if rng.random() < probability:
            for _ in range(rng.randint(1, 4)):
                yield True
        else:
            yield False


class StreamHarness:
    """Clock, reset, AXI-Stream source/sink and an output monitor for one DUT."""

    def __init__(self, dut, seed: int):
        self.dut = dut
        self.rng = random.Random(seed)
        Clock(dut.clk, CLOCK_NS, unit="ns").start()
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk, dut.rst, byte_lanes=1)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst, byte_lanes=1)
        for port in (self.source, self.sink):
            port.log.setLevel(logging.WARNING)
        self.records: list[tuple[int, int, int]] = []   # (cycle, tdata, tlast) per accepted output word
        self.cycle = 0

    async def reset(self) -> None:
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)
        cocotb.start_soon(self._monitor())

    async def _monitor(self) -> None:
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            if int(dut.m_axis_tvalid.value) and int(dut.m_axis_tready.value):
                self.records.append((self.cycle, int(dut.m_axis_tdata.value), int(dut.m_axis_tlast.value)))

    def set_random(self, idle: float, backpressure: float) -> None:
        self.source.set_pause_generator(pauses(self.rng, idle) if idle > 0 else None)
        self.sink.set_pause_generator(pauses(self.rng, backpressure) if backpressure > 0 else None)

    def clear_random(self) -> None:
        for port in (self.source, self.sink):
            port.clear_pause_generator()
            port.pause = False      # the killed generator may have left it paused

    async def wait_words(self, count: int, max_cycles: int, label: str) -> None:
        start = self.cycle
        while len(self.records) < count:
            if self.cycle - start > max_cycles:
                raise AssertionError(f"{label}: timeout after {max_cycles} cycles, {len(self.records)} of "
                                     f"{count} output words received")
            await ClockCycles(self.dut.clk, 8)
        await ClockCycles(self.dut.clk, 16)    # anything extra would be a duplicate
        if len(self.records) != count:
            raise AssertionError(f"{label}: {len(self.records)} output words, expected {count}")

    async def drain_sink(self) -> None:
        while not self.sink.empty():
            self.sink.recv_nowait()


def _check(records, expected: list[list[int]], lasts: list[bool], label: str) -> None:
    i = 0
    for v, (words, last) in enumerate(zip(expected, lasts)):
        for k, want in enumerate(words):
            _, got, got_last = records[i]
            want_last = int(last and k == len(words) - 1)
            if got != want or got_last != want_last:
                raise AssertionError(
                    f"{label}: vector {v} word {k}: got tdata=0x{got:x} tlast={got_last}, "
                    f"expected tdata=0x{want:x} tlast={want_last}")
            i += 1


async def run_stream_test(dut, in_vectors: list[list[int]], out_vectors: list[list[int]] | None,
                          cfg: dict[str, Any], out_words_per_vector: int, cycles_hint: int) -> dict[str, Any]:
    """Drive ``in_vectors``; check against ``out_vectors`` (None: collect only).

    cfg keys: seed, idle, backpressure (random phase runs when either > 0),
    timing_vectors (minimum vector count of the timing phase).
    Returns {"outputs": [[word, ...] per input vector of the timing phase],
    "cycles_per_vector": float | None, "completion_cycles": [...]}.
    """
    h = StreamHarness(dut, int(cfg.get("seed", 0)))
    await h.reset()
    n = len(in_vectors)
    nw = out_words_per_vector
    budget = lambda count, slow: 2000 + int(count * max(cycles_hint, 1) * slow) + 64 * count  # noqa: E731

    idle, bp = float(cfg.get("idle", 0.0)), float(cfg.get("backpressure", 0.0))
    if (idle > 0 or bp > 0) and n:
        h.set_random(idle, bp)
        lasts = []
        v = 0
        while v < n:
            group = min(n - v, h.rng.randint(1, 4))
            words = [w for vec in in_vectors[v:v + group] for w in vec]
            h.source.send_nowait(AxiStreamFrame(words))
            lasts += [False] * (group - 1) + [True]
            v += group
        await h.wait_words(n * nw, budget(n, 8.0 / max(1e-3, 1 - max(idle, bp))), "random phase")
        if out_vectors is not None:
            _check(h.records, out_vectors, lasts, "random phase")
        await h.drain_sink()
        h.clear_random()
        h.records.clear()

    # timing phase: back to back, one frame, TLAST only at the very end
    m = max(n, int(cfg.get("timing_vectors", 0)))
    order = [i % n for i in range(m)]
    words = [w for i in order for w in in_vectors[i]]
    await ClockCycles(dut.clk, 4)
    h.source.send_nowait(AxiStreamFrame(words))
    await h.wait_words(m * nw, budget(m, 3.0), "timing phase")
    if out_vectors is not None:
        _check(h.records, [out_vectors[i] for i in order], [i == m - 1 for i in range(m)], "timing phase")
    await h.drain_sink()
    done = [h.records[(i + 1) * nw - 1][0] for i in range(m)]
    k = m // 2
    cycles = (done[-1] - done[k]) / (m - 1 - k) if m - 1 - k > 0 else None
    outputs = [[h.records[i * nw + j][1] for j in range(nw)] for i in range(n)]
    return {"outputs": outputs, "cycles_per_vector": cycles, "completion_cycles": done}
