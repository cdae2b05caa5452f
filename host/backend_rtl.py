"""The ``rtl`` backend: the generated Verilog network, simulated through cocotb.

``bnnflow.sim.network.run_network`` owns the simulation; this backend imports
it only when a batch is run, so the driver works without the simulators.
"""

from __future__ import annotations

import numpy as np

from bnnflow import artifact as art

from .result import BackendResult

SIMULATORS = ("verilator", "icarus")


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

    def __init__(self, artifact: art.Artifact, sim: str = "verilator", **run_options):
        """``run_options`` go to ``run_network`` (e.g. ``check=True``, ``backpressure=0.3``)."""
        if sim not in SIMULATORS:
            raise ValueError(f"unknown simulator {sim!r}; choose one of {', '.join(SIMULATORS)}")
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
