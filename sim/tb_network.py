"""cocotb testbench of a layer pipeline described by an artifact (runs in the simulator).

The DUT is the generated ``bnnflow_top`` (or, for :mod:`tb_mvtu`, one
``bnn_mvtu`` built with layer 0's parameters of a one-layer artifact); both
map layer 0's input words to the last layer's output words. Expectations come
from :class:`bnnflow.golden.GoldenModel` on the same artifact and images, and
the stream words from :mod:`bnnflow.packing`, so nothing here restates the
bit layout.

Config (JSON, path in $BNNFLOW_TB_CONFIG): artifact, images (.npy), check,
seed, idle, backpressure, timing_vectors, result (output JSON path).
"""

from __future__ import annotations

import cocotb
import numpy as np

from bnnflow import artifact as art
from bnnflow import packing
from bnnflow.golden import GoldenModel
from bnnflow.sim.tbutil import load_config, run_stream_test, write_result


#: Write enables of the parameter write bus: bnnflow_top's cfg_we, a bare bnn_mvtu's two.
CONFIG_ENABLES = ("cfg_we", "cfg_weight_we", "cfg_threshold_we")


def tie_off_config(dut) -> None:
    """Hold the parameter write enables of the DUT low (if it has them).

    Icarus leaves an undriven top-level input at Z, which the memories' write
    logic would see as an unknown enable; Verilator zero-initializes inputs.
    The streams do not depend on the other cfg_* inputs while the enables are low.
    """
    for name in CONFIG_ENABLES:
        if hasattr(dut, name):
            getattr(dut, name).value = 0


async def artifact_stream_test(dut) -> None:
    tie_off_config(dut)
    cfg = load_config()
    a = art.load(cfg["artifact"])
    images = np.load(cfg["images"])
    first, last = a.layers[0], a.layers[-1]
    in_vectors = packing.pack_input_words(images, first.simd, first.input_bits)
    out_vectors = None
    if cfg.get("check", True):
        scores = GoldenModel(a).scores(images)
        out_vectors = [packing.words_to_int(s.reshape(last.nf, last.pe), last.output_bits) for s in scores]
    model_cycles = max(l.nf * l.sf for l in a.layers)
    res = await run_stream_test(dut, in_vectors, out_vectors, cfg, last.nf, model_cycles)
    scores = [packing.unpack_output_words(o, last.pe, last.output_bits, last.output_signed).tolist()
              for o in res["outputs"]]
    write_result(cfg, {"scores": scores, "cycles_per_vector": res["cycles_per_vector"],
                       "completion_cycles": res["completion_cycles"], "model_cycles": model_cycles})


@cocotb.test()
async def network_vs_golden(dut):
    """Every output word and TLAST of the network equals the golden model's."""
    await artifact_stream_test(dut)
