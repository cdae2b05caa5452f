"""cocotb testbench of one ``bnn_mvtu`` (runs in the simulator).

The unit is built with the parameters of layer 0 of a one-layer artifact
(:func:`bnnflow.rtlgen.mvtu_parameters`) and checked word by word, TLAST
included, against the golden model of that artifact under random idle and
backpressure; a back-to-back phase then measures the cycles per vector.
Config: see :mod:`bnnflow.sim.tb_network`.
"""

from __future__ import annotations

import cocotb

from bnnflow.sim.tb_network import artifact_stream_test


@cocotb.test()
async def mvtu_vs_golden(dut):
    """Every output word and TLAST of the MVTU equals the golden model's."""
    await artifact_stream_test(dut)
