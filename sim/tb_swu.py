"""cocotb testbench of ``bnn_swu``, the sliding-window unit (runs in the simulator).

Random seeded feature maps stream in as pixel words
(:func:`bnnflow.packing.pack_input_words` of the NHWC map, SIMD channels per
word); every output word and its TLAST must equal
:func:`bnnflow.conv.im2col` of the same maps packed the same way (one im2col
vector per output pixel, SIMD elements per word). :func:`run_image_test`
(shared with ``tb_maxpool``) runs two phases:

1. random phase: ``images`` images grouped into AXI-Stream frames of 1..3
   images (TLAST on the last word of a frame's last image only, as the DMA
   marks a batch), with random source idle cycles and sink backpressure; an
   image's last output word must carry TLAST exactly when its last input word
   did, and no other output word may;
2. timing phase: ``timing_images`` images back to back in one frame (TLAST on
   the very last word), no idle, no backpressure; the output completion
   cycles give the steady-state cycles per image (mean interval over the
   second half) and the cycle of the first input and output words the fill
   latency.

Config: IFM_H, IFM_W, CH, KERNEL, PAD, SIMD, ELEM_BITS, PAD_CODE, images,
timing_images, seed, idle, backpressure, result.
"""

from __future__ import annotations

from typing import Any

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiStreamFrame

from bnnflow import conv, packing
from bnnflow.sim.tbutil import StreamHarness, load_config, write_result


def random_maps(cfg: dict[str, Any], h: int, w: int, c: int, bits: int, count: int) -> np.ndarray:
    """``count`` seeded random (h, w, c) maps of ``bits``-bit codes, all codes equally likely."""
    rng = np.random.default_rng(int(cfg.get("seed", 0)))
    return rng.integers(0, 1 << bits, size=(count, h, w, c), dtype=np.int64)


def stream_words(maps: np.ndarray, per_word: int, bits: int) -> list[list[int]]:
    """(N, H, W, C') arrays as the stream words of each image: channels of a pixel together, ``per_word`` a word."""
    return packing.pack_input_words(maps.reshape(maps.shape[0], -1), per_word, bits)


async def _watch_input(dut, box: dict[str, int]) -> None:
    """Count clock edges; note the edge of the first accepted input word after ``box['armed']`` is set."""
    cycle = 0
    while True:
        await RisingEdge(dut.clk)
        cycle += 1
        if box.get("armed") and "first_in" not in box and int(dut.s_axis_tvalid.value) \
                and int(dut.s_axis_tready.value):
            box["first_in"] = cycle


def frames(rng, count: int, most: int = 3) -> list[int]:
    """Frame sizes (images per frame) covering ``count`` images in order: 2, then 1 (so an image's last
    word without TLAST and one with it both occur from 3 images on), then seeded random 1..``most``."""
    sizes = [2, 1] if count >= 3 else []
    while sum(sizes) < count:
        sizes.append(min(count - sum(sizes), rng.randint(1, most)))
    return sizes


def _check(records: list[tuple[int, int, int]], expected: list[list[int]], lasts: list[bool], label: str) -> None:
    i = 0
    for n, (words, last) in enumerate(zip(expected, lasts)):
        for k, want in enumerate(words):
            _, got, got_last = records[i]
            want_last = int(last and k == len(words) - 1)
            if got != want or got_last != want_last:
                raise AssertionError(f"{label}: image {n} word {k} of {len(words)}: got tdata=0x{got:x} "
                                     f"tlast={got_last}, expected tdata=0x{want:x} tlast={want_last}")
            i += 1


async def run_image_test(dut, in_images: list[list[int]], out_images: list[list[int]],
                         cfg: dict[str, Any]) -> dict[str, Any]:
    """Drive whole images (one frame each) and check every output word and TLAST; see the module docstring.

    Returns {"cycles_per_image": float, "latency": cycles from the first
    accepted input word of the timing phase to its first output word,
    "completion_cycles": [...]}.
    """
    h = StreamHarness(dut, int(cfg.get("seed", 0)))
    await h.reset()
    box: dict[str, int] = {}
    cocotb.start_soon(_watch_input(dut, box))
    n = len(in_images)
    n_out = len(out_images[0])
    hint = max(len(in_images[0]), n_out)

    idle, bp = float(cfg.get("idle", 0.0)), float(cfg.get("backpressure", 0.0))
    if idle > 0 or bp > 0:
        h.set_random(idle, bp)
        lasts: list[bool] = []
        start = 0
        for size in frames(h.rng, n):
            h.source.send_nowait(AxiStreamFrame([w for words in in_images[start:start + size] for w in words]))
            lasts += [False] * (size - 1) + [True]
            start += size
        await h.wait_words(n * n_out, 2000 + int(n * hint * 10 / max(1e-3, 1 - max(idle, bp))), "random phase")
        _check(h.records, out_images, lasts, "random phase")
        await h.source.wait()
        await h.drain_sink()
        h.clear_random()
        h.records.clear()

    m = max(n, int(cfg.get("timing_images", 0)))
    order = [i % n for i in range(m)]
    await ClockCycles(dut.clk, 4)
    box["armed"] = 1
    h.source.send_nowait(AxiStreamFrame([w for i in order for w in in_images[i]]))
    await h.wait_words(m * n_out, 2000 + m * hint * 3, "timing phase")
    _check(h.records, [out_images[i] for i in order], [j == m - 1 for j in range(m)], "timing phase")
    await h.drain_sink()
    done = [h.records[(i + 1) * n_out - 1][0] for i in range(m)]
    k = m // 2
    cycles = (done[-1] - done[k]) / (m - 1 - k) if m - 1 - k > 0 else None
    return {"cycles_per_image": cycles, "latency": h.records[0][0] - box["first_in"], "completion_cycles": done}


@cocotb.test()
async def swu_vs_im2col(dut):
    """Window order, padding code, TLAST and throughput of the sliding-window unit."""
    cfg = load_config()
    geom = conv.ConvGeometry(cfg["IFM_H"], cfg["IFM_W"], cfg["CH"], cfg["KERNEL"], cfg["PAD"])
    simd, bits = cfg["SIMD"], cfg["ELEM_BITS"]
    maps = random_maps(cfg, geom.ifm_h, geom.ifm_w, geom.channels, bits, int(cfg.get("images", 3)))
    vectors = conv.im2col(maps, geom, pad_code=cfg["PAD_CODE"])
    res = await run_image_test(dut, stream_words(maps, simd, bits), stream_words(vectors, simd, bits), cfg)
    write_result(cfg, {"cycles_per_image": res["cycles_per_image"], "latency": res["latency"]})
