"""The ``rtl`` backend: the generated Verilog network, simulated through cocotb.

``bnnflow.sim.network.run_network`` owns the simulation; this backend imports
it only when a batch is run, so the driver works without the simulators.
"""

from __future__ import annotations

import numpy as np

from bnnflow import artifact as art

from . import options as opt
from .result import BackendResult

SIMULATORS = ("verilator", "icarus")
#: ``bnnflow.sim.network.run_network``'s keyword options, with their checks (tests keep the list in sync).
RUN_OPTIONS = {
    "check": opt.check_bool,
    "seed": lambda name, value: opt.check_int(name, value, 0, (1 << 32) - 1),
    "idle": lambda name, value: opt.check_number(name, value, low=0, high=1, high_open=True),
    "backpressure": lambda name, value: opt.check_number(name, value, low=0, high=1, high_open=True),
    "timing_vectors": lambda name, value: opt.check_int(name, value, minimum=0),
}


class RtlUnavailableError(RuntimeError):
    """The RTL simulation backend cannot run here."""


def load_run_network():
    """``bnnflow.sim.network.run_network``, or a clear error saying why it is missing."""
    try:
        from bnnflow.sim.network import run_network
    except ImportError as exc:
        if getattr(exc, "name", None) in ("bnnflow.sim", "bnnflow.sim.network"):
            why = "this installation has no RTL simulation flow (bnnflow.sim.network is missing)"
        else:
            why = (f"its dependency {getattr(exc, 'name', None) or '?'} is missing; install the simulation "
                   "extras with `pip install -e '.[sim]'` (or `make venv`)")
        raise RtlUnavailableError(
            f"the rtl backend cannot run: {why} ({exc}); use backend='golden'") from exc
    return run_network


class RtlBackend:
    """Scores from a cycle-accurate simulation of the network's RTL."""

    name = "rtl"
    OPTIONS = ("sim", *RUN_OPTIONS)

    def __init__(self, artifact: art.Artifact, sim: str = "verilator", **run_options):
        """``run_options`` go to ``run_network`` (e.g. ``check=True``, ``backpressure=0.3``)."""
        opt.check_known(self.name, {"sim": sim, **run_options}, self.OPTIONS)
        if not isinstance(sim, str):
            raise TypeError(f"option sim={sim!r} ({type(sim).__name__}): expected one of {', '.join(SIMULATORS)}")
        if sim not in SIMULATORS:
            raise ValueError(f"unknown simulator {sim!r} (option sim): choose one of {', '.join(SIMULATORS)}")
        # the checked values, as plain Python types (the simulation's config is JSON)
        run_options = {name: RUN_OPTIONS[name](name, value) for name, value in run_options.items()}
        self.artifact = artifact
        self.sim = sim
        self.run_options = run_options
        self._run_network = load_run_network()

    def run(self, images: np.ndarray) -> BackendResult:
        if images.shape[0] == 0:
            return BackendResult(scores=np.zeros((0, self.artifact.num_classes), dtype=np.int64))
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
                             details={"sim": self.sim})

    def close(self) -> None:
        pass
