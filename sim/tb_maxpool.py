"""cocotb testbench of ``bnn_maxpool``, the max-pool unit (runs in the simulator).

Random seeded feature maps stream in as pixel words
(:func:`bnnflow.packing.pack_input_words` of the NHWC map, PE channels per
word); every output word and its TLAST must equal :func:`bnnflow.conv.max_pool`
of the same maps packed the same way. The phases (random idle and
backpressure, then back-to-back timing) are :func:`bnnflow.sim.tb_swu.run_image_test`'s.

Config: IFM_H, IFM_W, CH, POOL, PE, ELEM_BITS, images, timing_images, seed,
idle, backpressure, result.
"""

from __future__ import annotations

import cocotb

from bnnflow import conv
from bnnflow.sim.tb_swu import random_maps, run_image_test, stream_words
from bnnflow.sim.tbutil import load_config, write_result


@cocotb.test()
async def maxpool_vs_model(dut):
    """Window maxima, dropped rows/columns, TLAST and throughput of the max-pool unit."""
    cfg = load_config()
    geom = conv.PoolGeometry(cfg["IFM_H"], cfg["IFM_W"], cfg["CH"], cfg["POOL"])
    pe, bits = cfg["PE"], cfg["ELEM_BITS"]
    maps = random_maps(cfg, geom.ifm_h, geom.ifm_w, geom.channels, bits, int(cfg.get("images", 3)))
    pooled = conv.max_pool(maps, geom)
    res = await run_image_test(dut, stream_words(maps, pe, bits), stream_words(pooled, pe, bits), cfg)
    write_result(cfg, {"cycles_per_image": res["cycles_per_image"], "latency": res["latency"]})
