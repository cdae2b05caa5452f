"""The ``rtl`` backend: the generated Verilog network, simulated.

Two engines: ``bulk`` (the default with Verilator), ``bnnflow.sim.bulk.run_bulk``,
a compiled C++ harness around the Verilated top that streams a whole batch
with no Python per clock cycle; and ``cocotb`` (the default with Icarus, and
selectable with Verilator), ``bnnflow.sim.network.run_network``, the cocotb
testbench. Both take the same run options and give the same scores. The
engine is imported when the backend is constructed, never at driver import,
so the driver works without the simulators.
"""

from __future__ import annotations

import numpy as np

from bnnflow import artifact as art

from . import options as opt
from .result import BackendResult

SIMULATORS = ("verilator", "icarus")
#: The simulation engines: bulk (Verilator only, bnnflow.sim.bulk) and cocotb (bnnflow.sim.network).
ENGINES = ("bulk", "cocotb")
#: The keyword options of ``run_network`` and ``run_bulk`` (the same ones), with their checks
#: (tests keep the list in sync).
RUN_OPTIONS = {
    "check": opt.check_bool,
    "seed": lambda name, value: opt.check_int(name, value, 0, (1 << 32) - 1),
    "idle": lambda name, value: opt.check_number(name, value, low=0, high=1, high_open=True),
    "backpressure": lambda name, value: opt.check_number(name, value, low=0, high=1, high_open=True),
    "timing_vectors": lambda name, value: opt.check_int(name, value, minimum=0),
}


class RtlUnavailableError(RuntimeError):
    """The RTL simulation backend cannot run here."""


def _load(module: str, function: str | None):
    """``module.function`` of the simulation flow (the module for None), or a clear error saying why it is missing."""
    import importlib

    try:
        loaded = importlib.import_module(module)
        return loaded if function is None else getattr(loaded, function)
    except ImportError as exc:
        if getattr(exc, "name", None) in ("bnnflow.sim", "bnnflow.sim.network", "bnnflow.sim.bulk"):
            why = f"this installation has no RTL simulation flow ({getattr(exc, 'name', None)} is missing)"
        else:
            why = (f"its dependency {getattr(exc, 'name', None) or '?'} is missing; install the simulation "
                   "extras with `pip install -e '.[sim]'` (or `make venv`)")
        raise RtlUnavailableError(
            f"the rtl backend cannot run: {why} ({exc}); use backend='golden'") from exc
    except AttributeError as exc:   # a stand-in module without the function
        raise RtlUnavailableError(
            f"the rtl backend cannot run: {module} has no {function} ({exc}); use backend='golden'") from exc


def load_run_network():
    """``bnnflow.sim.network.run_network`` (the cocotb engine), or a clear error saying why it is missing."""
    return _load("bnnflow.sim.network", "run_network")


def load_run_bulk():
    """``bnnflow.sim.bulk.run_bulk`` (the bulk Verilator engine), or a clear error saying why it is missing."""
    _load("bnnflow.sim.network", None)    # run_bulk builds on it (design_files, RtlResult), even once imported
    return _load("bnnflow.sim.bulk", "run_bulk")


def check_engine(engine, sim: str) -> str:
    """The engine for ``sim``: ``None`` picks bulk for Verilator and cocotb for Icarus; bulk needs Verilator."""
    engine = opt.check_choice("engine", engine, ENGINES, none_ok=True)
    if engine is None:
        return "bulk" if sim == "verilator" else "cocotb"
    if engine == "bulk" and sim != "verilator":
        raise ValueError(f"option engine='bulk' needs sim='verilator' (the bulk harness is a compiled Verilator "
                         f"model); with sim={sim!r} use engine='cocotb' or leave engine unset")
    return engine


class RtlBackend:
    """Scores from a cycle-accurate simulation of the network's RTL."""

    name = "rtl"
    OPTIONS = ("sim", "engine", *RUN_OPTIONS)

    def __init__(self, artifact: art.Artifact, sim: str = "verilator", engine: str | None = None, **run_options):
        """``engine``: "bulk", "cocotb" or None (bulk with Verilator, cocotb with Icarus);
        ``run_options`` go to the engine (e.g. ``check=True``, ``backpressure=0.3``)."""
        opt.check_known(self.name, {"sim": sim, "engine": engine, **run_options}, self.OPTIONS)
        if not isinstance(sim, str):
            raise TypeError(f"option sim={sim!r} ({type(sim).__name__}): expected one of {', '.join(SIMULATORS)}")
        if sim not in SIMULATORS:
            raise ValueError(f"unknown simulator {sim!r} (option sim): choose one of {', '.join(SIMULATORS)}")
        self.engine = check_engine(engine, sim)
        # the checked values, as plain Python types (the simulation's config is JSON)
        run_options = {name: RUN_OPTIONS[name](name, value) for name, value in run_options.items()}
        self.artifact = artifact
        self.sim = sim
        self.run_options = run_options
        if self.engine == "bulk":
            self._run_bulk = load_run_bulk()
        else:
            self._run_network = load_run_network()

    def load(self, artifact: art.Artifact) -> dict:
        """Simulate ``artifact``'s RTL from now on (same signature: the same design with other memory contents)."""
        self.artifact = artifact
        return {}

    def run(self, images: np.ndarray) -> BackendResult:
        if images.shape[0] == 0:
            return BackendResult(scores=np.zeros((0, self.artifact.num_classes), dtype=np.int64))
        if self.engine == "bulk":
            result = self._run_bulk(self.artifact, images, **self.run_options)
        else:
            result = self._run_network(self.artifact, images, sim=self.sim, **self.run_options)
        scores = np.asarray(result.scores, dtype=np.int64)
        if scores.shape != (images.shape[0], self.artifact.num_classes):
            raise RuntimeError(f"rtl simulation returned scores of shape {scores.shape}, "
                               f"expected {(images.shape[0], self.artifact.num_classes)}")
        cycles = getattr(result, "cycles_per_image", None)
        model = getattr(result, "model_cycles", None)
        return BackendResult(scores=scores,
                             cycles_per_image=None if cycles is None else float(cycles),
                             model_cycles_per_image=None if model is None else int(model),
                             details={"sim": self.sim, "engine": self.engine})

    def close(self) -> None:
        pass
