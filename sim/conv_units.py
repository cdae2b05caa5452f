"""Build and run the convolution units ``bnn_swu`` (sliding window) and ``bnn_maxpool`` on their own.

The geometry is :mod:`bnnflow.conv`'s (:class:`~bnnflow.conv.ConvGeometry`,
:class:`~bnnflow.conv.PoolGeometry`, which refuse impossible maps); the
functions here add the stream folding (SIMD / PE channels per word, element
width, padding code), refuse what the RTL cannot build before any simulator
starts, and give the units' parameters and their cycle counts. Each ``run_*``
builds (cached, :func:`bnnflow.sim.runner.build`) and runs one cocotb
testbench that checks every output word against :func:`bnnflow.conv.im2col` /
:func:`bnnflow.conv.max_pool` under random idle and backpressure, then
measures the back-to-back cycles per image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import conv, rtlgen
from . import runner

SWU_MODULE = "bnn_swu"
MAXPOOL_MODULE = "bnn_maxpool"
#: element widths the units are tested for: the flow's activation codes (docs/ARTIFACT.md)
MAX_ELEM_BITS = 8


def _positive(what: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what}: {name} must be a positive integer, got {value!r}")
    return value


def _fold(what: str, name: str, per_word: int, channels: int) -> None:
    try:
        conv.channel_folds(channels, per_word, name)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def _elem_bits(what: str, elem_bits: Any) -> int:
    if isinstance(elem_bits, bool) or not isinstance(elem_bits, int) or not 1 <= elem_bits <= MAX_ELEM_BITS:
        raise ValueError(f"{what}: ELEM_BITS must be an integer in 1..{MAX_ELEM_BITS}, got {elem_bits!r}")
    return elem_bits


def swu_parameters(geom: conv.ConvGeometry, simd: int, elem_bits: int, pad_code: int = 0) -> dict[str, int]:
    """The ``bnn_swu`` parameters of ``geom`` at ``simd`` channels per word; ValueError for what it cannot build.

    ``pad_code`` is the code out-of-map window positions read (conv.im2col's
    ``pad_code``); it must fit ``elem_bits``.
    """
    if not isinstance(geom, conv.ConvGeometry):
        raise ValueError(f"sliding-window unit: expected a conv.ConvGeometry, got {type(geom).__name__}")
    what = "sliding-window unit"
    _fold(what, "SIMD", simd, geom.channels)
    _elem_bits(what, elem_bits)
    if isinstance(pad_code, bool) or not isinstance(pad_code, int) or not 0 <= pad_code < (1 << elem_bits):
        raise ValueError(f"{what}: PAD_CODE must be a code of ELEM_BITS={elem_bits} bits "
                         f"(0..{(1 << elem_bits) - 1}), got {pad_code!r}")
    return {"IFM_H": geom.ifm_h, "IFM_W": geom.ifm_w, "CH": geom.channels, "KERNEL": geom.kernel,
            "PAD": geom.pad, "SIMD": simd, "ELEM_BITS": elem_bits, "PAD_CODE": pad_code}


def maxpool_parameters(geom: conv.PoolGeometry, pe: int, elem_bits: int) -> dict[str, int]:
    """The ``bnn_maxpool`` parameters of ``geom`` at ``pe`` channels per word; ValueError for what it cannot build."""
    if not isinstance(geom, conv.PoolGeometry):
        raise ValueError(f"max-pool unit: expected a conv.PoolGeometry, got {type(geom).__name__}")
    _fold("max-pool unit", "PE", pe, geom.channels)
    _elem_bits("max-pool unit", elem_bits)
    return {"IFM_H": geom.ifm_h, "IFM_W": geom.ifm_w, "CH": geom.channels, "POOL": geom.pool, "PE": pe,
            "ELEM_BITS": elem_bits}


def swu_words(geom: conv.ConvGeometry, simd: int) -> tuple[int, int]:
    """(input words, output words) of one image through ``bnn_swu`` (conv.ConvGeometry.stream_words)."""
    return geom.stream_words(simd)


def swu_cycles_per_image(geom: conv.ConvGeometry, simd: int) -> int:
    """Back-to-back cycles per image of ``bnn_swu`` without backpressure: one word per cycle on the busier side.

    The output side is never the smaller (K*K words per output pixel), so this
    is OFM_H*OFM_W*K*K*CH/SIMD; the tests hold the unit to it.
    """
    return max(swu_words(geom, simd))


def maxpool_words(geom: conv.PoolGeometry, pe: int) -> tuple[int, int]:
    """(input words, output words) of one image through ``bnn_maxpool`` (conv.PoolGeometry.stream_words)."""
    return geom.stream_words(pe)


def maxpool_cycles_per_image(geom: conv.PoolGeometry, pe: int) -> int:
    """Back-to-back cycles per image of ``bnn_maxpool``: one input word per cycle, IFM_H*IFM_W*CH/PE."""
    return max(maxpool_words(geom, pe))


def unit_sources(module: str) -> list[Path]:
    """The Verilog files of one streaming unit: the unit and the output FIFO it instantiates."""
    return [rtlgen.library_dir() / f"{module}.v", rtlgen.library_dir() / "bnn_out_fifo4.v"]


def _run(module: str, params: dict[str, int], tb: str, sim: str, images: int, seed: int, idle: float,
         backpressure: float, timing_images: int) -> dict[str, Any]:
    if images < 1 or timing_images < 1:
        raise ValueError(f"{module}: images and timing_images must be >= 1, got {images} and {timing_images}")
    b = runner.build(sim, module, unit_sources(module), params)
    cfg = {**params, "images": images, "timing_images": timing_images, "seed": seed, "idle": idle,
           "backpressure": backpressure}
    return runner.run(b, tb, cfg, seed=seed)


def run_swu(geom: conv.ConvGeometry, simd: int, elem_bits: int, pad_code: int, sim: str, *, images: int = 3,
            seed: int = 0, idle: float = 0.3, backpressure: float = 0.4, timing_images: int = 6) -> dict[str, Any]:
    """Check one ``bnn_swu`` configuration against conv.im2col; the tb result (cycles_per_image, latency)."""
    params = swu_parameters(geom, simd, elem_bits, pad_code)
    return _run(SWU_MODULE, params, "bnnflow.sim.tb_swu", sim, images, seed, idle, backpressure, timing_images)


def run_maxpool(geom: conv.PoolGeometry, pe: int, elem_bits: int, sim: str, *, images: int = 3, seed: int = 0,
                idle: float = 0.3, backpressure: float = 0.4, timing_images: int = 6) -> dict[str, Any]:
    """Check one ``bnn_maxpool`` configuration against conv.max_pool; the tb result (cycles_per_image, latency)."""
    params = maxpool_parameters(geom, pe, elem_bits)
    return _run(MAXPOOL_MODULE, params, "bnnflow.sim.tb_maxpool", sim, images, seed, idle, backpressure,
                timing_images)
