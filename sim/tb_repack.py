"""cocotb testbench of ``bnn_axis_repack`` (runs in the simulator).

Random vectors of ELEMS elements are sent as IN_ELEMS-element words; the
expected output is the same vector zero-padded to ELEMS_PAD elements and cut
into OUT_ELEMS-element words, both built with :func:`bnnflow.packing.words_to_int`.
Config: IN_ELEMS, OUT_ELEMS, ELEM_BITS, ELEMS, ELEMS_PAD, vectors, seed, idle,
backpressure, timing_vectors, result.
"""

from __future__ import annotations

import cocotb
import numpy as np

from bnnflow import packing
from bnnflow.sim.tbutil import load_config, run_stream_test, write_result


@cocotb.test()
async def repack_vs_model(dut):
    """Width conversion, zero padding and TLAST of the repacker."""
    cfg = load_config()
    ie, oe, eb = cfg["IN_ELEMS"], cfg["OUT_ELEMS"], cfg["ELEM_BITS"]
    elems, pad = cfg["ELEMS"], cfg["ELEMS_PAD"]
    rng = np.random.default_rng(int(cfg.get("seed", 0)))
    n = int(cfg.get("vectors", 16))
    values = rng.integers(0, 1 << eb, size=(n, elems), dtype=np.int64)
    padded = np.zeros((n, pad), dtype=np.int64)
    padded[:, :elems] = values
    in_vectors = [packing.words_to_int(v.reshape(elems // ie, ie), eb) for v in values]
    out_vectors = [packing.words_to_int(v.reshape(pad // oe, oe), eb) for v in padded]
    res = await run_stream_test(dut, in_vectors, out_vectors, cfg, pad // oe, max(elems // ie, pad // oe))
    write_result(cfg, {"cycles_per_vector": res["cycles_per_vector"]})
