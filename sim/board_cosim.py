"""The PYNQ driver against the generated RTL: a simulated board whose accelerator is ``bnnflow_accel`` in a simulator.

``board-sim`` (``bnnflow.host.simdevice``) runs the board backend's real code
-- ``BnnDriver``, ``BoardBackend``, ``BnnflowAccel``, pynq's ``MMIO`` and
AXI DMA drivers -- against a ``pynq.Device`` whose registers and memory are
Python. :class:`RtlSimDevice` keeps that device's DMA model (registers,
buffers, MM2S beats with TKEEP and TLAST, S2MM packets up to TLAST) and
replaces only the accelerator: its registers and streams are the export's
generated ``bnnflow_accel`` simulated by Icarus or Verilator, driven through
cocotbext-axi's ``AxiLiteMaster``, ``AxiStreamSource`` and ``AxiStreamSink``
(:mod:`bnnflow.sim.tb_board`).

Select it with ``BnnDriver(export, backend="board-sim", engine="rtl")``
(Verilator) or ``engine=RtlCosim(sim="icarus")``; everything the driver does
-- the signature check at construction, ``scores()``, ``load()``, the STATUS
checks -- then runs on the RTL.

Why a separate simulator process and not the driver inside the cocotb test:
the driver keeps running in the caller's process (a pytest test, a script,
``bnnflow verify``), so its errors are ordinary Python exceptions there, and
the same device serves tests and users. The simulator runs in lock step: it
advances only while the host asks it to (an AXI4-Lite access, or while an
accelerator run is in progress, up to ``RtlCosim.step_cycles`` per DMA poll)
and blocks otherwise, so simulated time stands still while Python runs.

The build is :mod:`bnnflow.sim.runner`'s content-cached one of
``rtlgen.ACCEL_MODULE`` (the same as tests/test_rtl_accel.py's); the
export's ``.mem`` files are the power-on parameters.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from .. import accel
from .. import artifact as art
from .. import rtlgen
from ..host import options as opt
from ..host.simdevice import SimDevice
from . import runner, toolchain
from .network import design_files

#: The simulators the co-simulation runs on.
SIMULATORS = ("verilator", "icarus")
#: Clock cycles an AXI4-Lite poll of a finishing run advances when no stream is waited for.
SETTLE_CYCLES = 8
#: How long the simulator may take to start and connect (after the build), in seconds.
CONNECT_TIMEOUT_S = 120.0
#: How long closing waits for the simulator to end, in seconds.
CLOSE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RtlCosim:
    """The ``engine`` option of ``board-sim`` that puts the generated RTL behind the simulated DMA.

    ``sim``: ``"verilator"`` or ``"icarus"``. ``seed``: the testbench's random
    generator (the idle and backpressure patterns). ``idle``/``backpressure``:
    probabilities in [0, 1) of a cycle without a beat on the MM2S stream and of
    the S2MM stream holding TREADY low (the DMA's own stalls). ``step_cycles``:
    the most clock cycles one DMA register poll runs the simulation while an
    accelerator run is in progress (it stops earlier once the MM2S packet is
    taken or an S2MM packet is complete).
    """

    sim: str = "verilator"
    seed: int = 0
    idle: float = 0.0
    backpressure: float = 0.0
    step_cycles: int = 4096

    def __post_init__(self) -> None:
        opt.check_choice("sim", self.sim, SIMULATORS)
        opt.check_int("seed", self.seed, 0, (1 << 32) - 1)
        opt.check_number("idle", self.idle, low=0, high=1, high_open=True)
        opt.check_number("backpressure", self.backpressure, low=0, high=1, high_open=True)
        opt.check_int("step_cycles", self.step_cycles, minimum=1)


def _simulate(outcome: dict[str, Any], build: runner.Build, config: dict[str, Any], memories: dict[str, Path],
              seed: int) -> None:
    """The simulator thread: run :mod:`bnnflow.sim.tb_board` to its end; its result or error into ``outcome``."""
    try:
        outcome["result"] = runner.run(build, "bnnflow.sim.tb_board", config, files=memories, seed=seed)
    except BaseException as exc:  # reported by RtlSession.call()/close() in the caller's thread
        outcome["error"] = exc


class RtlSession:
    """``bnnflow_accel`` of one export running in a simulator process, driven one command at a time.

    Builds (cached) the export's accelerator, starts the simulator with
    :mod:`bnnflow.sim.tb_board` in a background thread (``runner.run``) and
    connects to it over a Unix socket. :meth:`call` sends one command and
    returns its reply; :meth:`close` ends the simulation and returns the
    testbench's result. A simulator that fails or exits is a
    :class:`~bnnflow.sim.runner.SimulationError` naming its log.
    """

    def __init__(self, artifact: art.Artifact, cosim: RtlCosim):
        toolchain.require(cosim.sim)
        self.artifact, self.cosim = artifact, cosim
        # what the simulator thread ends with ("result" or "error"); not the session itself, so a dropped
        # session can be collected (and its finalizer end the simulator) while the thread still runs
        self._outcome: dict[str, Any] = {}
        self.closed = False
        self.ended = ""          # why the session is closed (for the error of a later call)
        self.conn: Connection | None = None
        # a private folder: the generated RTL of an export without one, and the socket (a short path: the
        # limit of a Unix socket's name is about 100 bytes)
        self._scratch = tempfile.TemporaryDirectory(prefix="bnnflow-board-")
        scratch = Path(self._scratch.name)
        self.address = str(scratch / "tb.sock")
        try:
            sources, memories = design_files(artifact, scratch)
            self.build = runner.build(cosim.sim, rtlgen.ACCEL_MODULE, sources)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                listener.bind(self.address)
                listener.listen(1)
                config = {"artifact": str(artifact.root.resolve()), "address": self.address, "seed": cosim.seed,
                          "idle": cosim.idle, "backpressure": cosim.backpressure}
                self._thread = threading.Thread(target=_simulate, args=(self._outcome, self.build, config, memories,
                                                                        cosim.seed),
                                                name=f"bnnflow-board-cosim-{cosim.sim}", daemon=True)
                self._thread.start()
                self.conn = self._accept(listener)
            finally:
                listener.close()
        except BaseException:
            self.closed = True
            self._scratch.cleanup()
            raise
        # a driver that is dropped without close() still ends the simulator (at the latest at exit)
        self._finalizer = weakref.finalize(self, RtlSession._end, self.conn, self._thread, self._scratch)

    @property
    def result(self) -> dict[str, Any] | None:
        """The testbench's result once the simulation has ended normally."""
        return self._outcome.get("result")

    @property
    def error(self) -> BaseException | None:
        """Why the simulation failed, once it has."""
        return self._outcome.get("error")

    def _accept(self, listener: socket.socket) -> Connection:
        listener.settimeout(0.2)
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while True:
            try:
                sock, _ = listener.accept()
                break
            except socket.timeout:
                if not self._thread.is_alive():
                    raise self._failure("the simulator ended before it connected") from None
                if time.monotonic() > deadline:
                    raise runner.SimulationError(
                        f"{self.cosim.sim} simulation of {rtlgen.ACCEL_MODULE} for {self.artifact.root}: the "
                        f"testbench did not connect within {CONNECT_TIMEOUT_S:.0f} s") from None
        sock.settimeout(None)
        return Connection(sock.detach())

    def _failure(self, what: str) -> runner.SimulationError:
        """A SimulationError for a simulator that stopped serving, with the simulator's own error if any."""
        self._thread.join(CLOSE_TIMEOUT_S)
        cause = f"\nthe simulator: {self.error}" if self.error is not None else ""
        return runner.SimulationError(f"{self.cosim.sim} co-simulation of {rtlgen.ACCEL_MODULE} for "
                                      f"{self.artifact.root}: {what}{cause}")

    def call(self, op: str, address: int = 0, value: int = 0, packets: list | tuple = (), sink_ready: bool = False,
             max_cycles: int = 0) -> tuple:
        """One command (:mod:`bnnflow.sim.tb_board` lists them); its reply ``(value, packets, source_idle, cycle,
        beat_errors)``."""
        if self.closed or self.conn is None:
            raise runner.SimulationError(
                f"the {self.cosim.sim} co-simulation of {self.artifact.root} has ended ({self.ended}); "
                "make a new BnnDriver to run again")
        try:
            self.conn.send((op, address, value, list(packets), sink_ready, max_cycles))
            reply = self.conn.recv()
        except (EOFError, OSError) as exc:
            self._abandon()
            raise self._failure(f"the simulator stopped answering ({type(exc).__name__})") from None
        if len(reply) == 2 and reply[0] == "error":
            self._abandon()
            raise self._failure(f"the testbench failed on {op} 0x{address:x}:\n{reply[1]}")
        return reply

    def _abandon(self) -> None:
        """After a failure: no close command (the testbench has ended or cannot answer), just let go."""
        self.closed, self.ended = True, "it failed"
        self._finalizer.detach()
        self.conn.close()
        self._scratch.cleanup()

    def close(self) -> dict[str, Any]:
        """End the simulation; the testbench's result (commands served, cycles, ``beat_errors``)."""
        if self.closed:
            return self.result or {}
        self.closed, self.ended = True, "the driver was closed"
        self._finalizer.detach()
        try:
            self.conn.send(("close", 0, 0, [], False, 0))
            final = self.conn.recv()
        except (EOFError, OSError) as exc:
            raise self._failure(f"the simulator stopped before it was closed ({type(exc).__name__})") from None
        finally:
            self.conn.close()
        self._thread.join(CLOSE_TIMEOUT_S)
        self._scratch.cleanup()
        if self.error is not None:
            raise self._failure("the simulation failed")
        return self.result or final

    @staticmethod
    def _end(conn: Connection, thread: threading.Thread, scratch: tempfile.TemporaryDirectory) -> None:
        try:
            conn.send(("close", 0, 0, [], False, 0))
            conn.recv()
        except (EOFError, OSError):
            pass
        conn.close()
        thread.join(5.0)
        scratch.cleanup()


class RtlSimDevice(SimDevice):
    """A :class:`~bnnflow.host.simdevice.SimDevice` whose accelerator is the generated RTL in a simulator.

    The DMA model, the buffers, ``register_log``, ``runs``/``loads`` and
    ``corrupt_next_transfer`` are the SimDevice's; the accelerator's register
    reads and writes are AXI4-Lite transactions in the simulation, MM2S
    transfers become ``s_axis`` packets (TKEEP per byte, TLAST on the last
    beat) and ``m_axis`` packets become what S2MM writes. ``runs`` counts the
    runs started (ap_start written), ``loads`` those in load mode.
    ``beat_errors`` collects the output beat checks' complaints (TKEEP not
    all ones, a padding bit set, TLAST inside a word); ``close()`` ends the
    simulation (``BnnDriver.close()`` calls it).
    """

    def __init__(self, artifact: art.Artifact, cosim: RtlCosim | None = None, dma_data_width: int = 64,
                 length_width: int = 26):
        super().__init__(artifact, engine=None, dma_data_width=dma_data_width, length_width=length_width)
        self.cosim = cosim or RtlCosim()
        if not isinstance(self.cosim, RtlCosim):
            raise TypeError(f"cosim={cosim!r}: expected an RtlCosim or None")
        self.engine = None           # the RTL computes; the numpy engine is never used
        self.parameters = None       # the memories are the RTL's (power-on: the artifact's .mem files)
        self.running = False         # a run was started and no poll has seen ap_idle since
        self.source_idle = True      # the MM2S packets handed to the simulation are all taken
        self.cycle = 0
        self.beat_errors: list[str] = []
        self.result: dict[str, Any] | None = None
        self._mode_written = 0
        self._fed = False            # MM2S packets went to the simulation during the current run
        self.session = RtlSession(artifact, self.cosim)

    # -- the accelerator is the simulation ----------------------------------------------
    def _call(self, op: str, address: int = 0, value: int = 0, max_cycles: int = 0) -> int | None:
        packets = self.to_engine.take_packets()
        if packets:
            self.source_idle = False
            self._fed = True
        result, received, idle, cycle, errors = self.session.call(
            op, address, value, packets, sink_ready=self.s2mm.busy, max_cycles=max_cycles)
        self.source_idle, self.cycle = bool(idle), int(cycle)
        self.beat_errors += errors
        beat_bytes = self.out_stream.beat_bytes
        for data, keep_all in received:
            beats = len(data) // beat_bytes
            if not keep_all:
                self.beat_errors.append(f"an m_axis packet of {beats} beats had TKEEP bits clear")
            last = np.zeros(beats, dtype=bool)
            last[-1] = True
            self.from_engine.push_beats(data, last)
        return result

    def _accel_read(self, offset: int) -> int:
        value = int(self._call("read", offset))
        if offset == accel.CTRL and value & accel.AP_IDLE:
            self.running = False
        return value

    def _accel_write(self, offset: int, value: int) -> None:
        self._call("write", offset, value)
        if offset == accel.MODE:
            self._mode_written = value
        elif offset == accel.CTRL and value & accel.AP_START:
            self.running = True
            self._fed = not self.source_idle  # input handed over before ap_start counts for this run
            self.runs += 1
            self.loads += self._mode_written == accel.MODE_LOAD

    def _step_accelerator(self) -> None:
        """Run the clock while a run is in progress.

        Up to ``step_cycles`` (ending once the MM2S packet is taken or an S2MM
        packet is complete) while input is pending or output is due (input went
        in during this run and S2MM waits); else ``SETTLE_CYCLES`` (the run
        waits for input not sent yet, or only ap_done is due); not at all
        between runs. Only the simulation's speed depends on this choice: the
        RTL decides what happens in the cycles.
        """
        if not self.running:
            if len(self.to_engine):
                self._call("advance")  # hand the packet to the source; it waits for TREADY
            return
        pending = bool(len(self.to_engine)) or not self.source_idle
        due = self.s2mm.busy and self._fed
        self._call("advance", max_cycles=self.cosim.step_cycles if pending or due else SETTLE_CYCLES)

    def _mm2s_drained(self) -> bool:
        return not len(self.to_engine) and self.source_idle

    def close(self) -> None:
        """End the simulation (idempotent); ``result`` holds the testbench's summary."""
        if self.result is None and not self.session.closed:
            self.result = self.session.close()
