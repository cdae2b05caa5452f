"""cocotb server of the board co-simulation: ``bnnflow_accel`` driven, one command at a time, by a host process.

Runs inside the simulator. The host side (:mod:`bnnflow.sim.board_cosim`)
runs the unchanged PYNQ driver -- ``BnnDriver``, ``BoardBackend``, pynq's
MMIO and AXI DMA drivers -- against ``RtlSimDevice``, whose accelerator is
this simulation: each register access the driver makes becomes an AXI4-Lite
transaction of cocotbext-axi's ``AxiLiteMaster``, each MM2S transfer a
packet of ``AxiStreamSource`` on ``s_axis`` (TKEEP per byte, TLAST on its last
beat), and what ``AxiStreamSink`` takes from ``m_axis`` comes back as S2MM
packets. The bus models, the clock, the reset and the output beat checks are
:class:`bnnflow.sim.tb_accel.AccelHarness`'s.

Lock step: the simulator advances only inside a command and blocks while it
waits for the next one, so simulated time stands still while the host's
Python runs. Commands arrive over a Unix socket
(``multiprocessing.connection``) named in the config; each is a tuple
``(op, address, value, packets, sink_ready, max_cycles)``:

- ``packets``: new MM2S packets to queue on the source first;
- ``sink_ready``: whether the S2MM channel takes beats (the sink holds
  TREADY low otherwise, as the DMA does without a programmed transfer);
- ``op`` ``"read"``/``"write"``: one AXI4-Lite access of ``address``;
  ``"advance"``: up to ``max_cycles`` clock cycles, ending early when the
  source has sent everything it held or a packet has reached the sink;
  ``"close"``: end the simulation.

Every reply is ``(value, packets, source_idle, cycle, beat_errors)``: the
register value read (or None), the packets completed at the sink since the
last reply (TDATA bytes, whether every TKEEP bit was set), whether the source
has sent all it was given, the clock cycle, and new violations of the output
beat checks. An exception while serving is sent back as ``("error", text)``
before the test fails.

Config (JSON, path in $BNNFLOW_TB_CONFIG): artifact (the build's export,
.mem files in the run directory), address, seed, idle (source idle
probability), backpressure (sink backpressure probability), result.
"""

from __future__ import annotations

import traceback
from multiprocessing.connection import Client
from typing import Any

import cocotb
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiStreamFrame

from bnnflow import artifact as art
from bnnflow.sim.tb_accel import AccelHarness
from bnnflow.sim.tbutil import load_config, pauses, write_result

#: Clock cycles between the checks of an ``advance`` command's end conditions.
CHECK_EVERY = 4


class BoardServer:
    """The accelerator's bus models, serving the host's commands."""

    def __init__(self, h: AccelHarness, idle: float, backpressure: float):
        self.h = h
        self.backpressure = backpressure
        self.sink_ready: bool | None = None
        self.errors_sent = 0
        if idle > 0:
            h.source.set_pause_generator(pauses(h.rng, idle))

    def set_sink_ready(self, ready: bool) -> None:
        if ready == self.sink_ready:
            return
        self.sink_ready = ready
        sink = self.h.sink
        sink.clear_pause_generator()
        if ready and self.backpressure > 0:
            sink.set_pause_generator(pauses(self.h.rng, self.backpressure))
        else:
            sink.pause = not ready

    async def advance(self, max_cycles: int) -> None:
        h = self.h
        pending = not h.source.idle()
        done = 0
        while done < max_cycles:
            step = min(CHECK_EVERY, max_cycles - done)
            await ClockCycles(h.dut.ap_clk, step)
            done += step
            if (pending and h.source.idle()) or not h.sink.empty():
                return

    async def serve(self, command: tuple) -> tuple:
        op, address, value, packets, sink_ready, max_cycles = command
        h = self.h
        for data, keep in packets:
            h.source.send_nowait(AxiStreamFrame(data, tkeep=keep))
        self.set_sink_ready(bool(sink_ready))
        result = None
        if op == "read":
            result = await h.read(address)
        elif op == "write":
            await h.write(address, value)
        elif op == "advance":
            await self.advance(int(max_cycles))
        else:
            raise ValueError(f"unknown command {op!r}")
        received = []
        while not h.sink.empty():
            frame = h.sink.recv_nowait(compact=False)
            received.append((bytes(frame.tdata), all(frame.tkeep)))
        errors = h.beat_errors[self.errors_sent:]
        self.errors_sent = len(h.beat_errors)
        return result, received, bool(h.source.idle()), h.cycle, errors


@cocotb.test()
async def board_server(dut):
    """Serve the host's register accesses and DMA packets until it closes the connection."""
    cfg = load_config()
    a = art.load(cfg["artifact"])
    h = AccelHarness(dut, a, int(cfg.get("seed", 0)))
    await h.reset()
    server = BoardServer(h, float(cfg.get("idle", 0.0)), float(cfg.get("backpressure", 0.0)))
    conn = Client(cfg["address"], family="AF_UNIX")
    commands = 0
    closed_by = "host gone (connection closed without a close command)"
    try:
        while True:
            try:
                command = conn.recv()  # blocks the simulator: time stands still while the host runs
            except EOFError:
                break
            if command[0] == "close":
                closed_by = "close command"
                break
            commands += 1
            try:
                reply = await server.serve(command)
            except Exception:
                conn.send(("error", traceback.format_exc()))
                raise
            conn.send(reply)
    finally:
        result: dict[str, Any] = {"commands": commands, "cycles": h.cycle, "beat_errors": h.beat_errors,
                                  "ended_by": closed_by, "input_left": int(h.source.count())}
        write_result(cfg, result)
        if closed_by == "close command":
            conn.send(result)
        conn.close()
