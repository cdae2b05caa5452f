"""Resource estimates of bnnflow's RTL, from unit costs measured once with yosys.

``bnnflow fold`` must answer "what fits the device?" for thousands of candidate
foldings in well under a second, and without yosys installed, so it uses a
model; this module measures that model and evaluates it.

**Measuring** (``python -m bnnflow.costs --regenerate``, a few minutes on two
cores): yosys 0.23 ``synth_xilinx -family xc7 -noiopad -flatten`` synthesizes
the RTL library's units over a grid of parameters -- ``bnn_mvtu`` for every
layer kind (XNOR threshold, integer first layer at 1..8 input bits, XNOR
score), ``bnn_axis_repack``, and the accelerator shell (the generated
``bnnflow_accel`` with its core black-boxed) -- plus a depth x width sweep of
the weight memory that stops after yosys's memory mapping. Every measured
point (parameters and yosys's cell counts) goes into ``bnnflow/cost_table.py``
with the yosys version, the command and the hashes of the RTL it measured, so
the model's error against its own data can be printed
(``python -m bnnflow.costs --check``).

**The model** (:class:`CostModel`), per unit:

- memories -- the weight, threshold, input-buffer and output-FIFO memories of
  ``bnn_mvtu`` -- follow yosys's own choice between block RAM (RAMB18 / RAMB36
  in their depth x width modes) and LUT RAM (RAM32M / RAM64M), reproduced from
  the primitive geometries and the costs in yosys's Xilinx memory libraries
  (:func:`memory_map`) and checked against every measured point;
- logic LUTs and flip-flops are linear in a few widths the RTL's parameters
  fix (lanes x dot-product bits per lane kind, accumulator bits, register
  bits), with coefficients fitted to the measured points by least squares.

Counts are yosys estimates for a 7-series part, not Vivado results (Vivado
packs LUTs more tightly and may choose memories differently). "LUT" counts LUT
sites: logic LUTs plus the LUTs used as memory (4 per RAM32M / RAM64M) and
shift registers. The UltraScale+ parts of :data:`DEVICES` use the same 6-input
LUT and 36 Kb block RAM, so the 7-series figures serve as their estimate too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import pprint
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from . import accel
from . import artifact as art

# -- devices ----------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """An FPGA part's resources (the programmable logic only)."""

    name: str
    part: str
    boards: str
    lut: int
    ff: int
    bram36: int
    dsp: int
    uram: int = 0

    @property
    def bram_bits(self) -> int:
        """Block RAM capacity in bits (36 Kb per BRAM36, parity bits included)."""
        return self.bram36 * 36 * 1024


#: Parts ``bnnflow fold`` and ``report`` know (figures from the parts' data sheets).
DEVICES: dict[str, Device] = {
    "xc7z020": Device("xc7z020", "xc7z020clg400-1", "PYNQ-Z1, PYNQ-Z2", lut=53_200, ff=106_400, bram36=140, dsp=220),
    "xck26": Device("xck26", "xck26-sfvc784-2LV-c", "Kria KV260", lut=117_120, ff=234_240, bram36=144, dsp=1_248,
                    uram=64),
    "xczu3eg": Device("xczu3eg", "xczu3eg-sbva484-1-i", "Ultra96-V2", lut=70_560, ff=141_120, bram36=216, dsp=360),
}


class UnknownDeviceError(ValueError):
    """A device name that is not in :data:`DEVICES`."""


def device(name: str) -> Device:
    """The :class:`Device` called ``name``; the error lists the known ones."""
    try:
        return DEVICES[name]
    except KeyError:
        raise UnknownDeviceError(f"unknown device {name!r}; known devices: "
                                 + ", ".join(f"{d.name} ({d.boards})" for d in DEVICES.values())) from None


# -- resources --------------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    """LUT sites, flip-flops, block RAM (in BRAM36, a RAMB18 is 0.5) and DSP slices of a unit or design.

    ``lutram`` is the part of ``lut`` used as memory or shift register (SLICEM LUTs).
    """

    lut: float = 0.0
    ff: float = 0.0
    bram36: float = 0.0
    dsp: float = 0.0
    lutram: float = 0.0

    def __add__(self, other: Resources) -> Resources:
        return Resources(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def rounded(self) -> Resources:
        """Whole LUTs/FFs/DSPs, BRAM36 to the half block (what a report prints)."""
        return Resources(round(self.lut), round(self.ff), math.ceil(self.bram36 * 2 - 1e-9) / 2, round(self.dsp),
                         round(self.lutram))

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def total(parts: Iterable[Resources]) -> Resources:
    out = Resources()
    for p in parts:
        out = out + p
    return out


#: LUT sites of each LUT-RAM / shift-register primitive yosys instantiates for 7-series.
LUTRAM_SITES = {"RAM32M": 4, "RAM32M16": 8, "RAM64M": 4, "RAM64M8": 8, "RAM32X1D": 2, "RAM64X1D": 2,
                "RAM128X1D": 4, "RAM256X1D": 8, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4,
                "RAM512X1S": 8, "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1}


def cells_to_resources(cells: dict[str, int]) -> Resources:
    """Sum yosys's 7-series cell counts (``stat -json``) into :class:`Resources`.

    Logic LUTs are LUT1..LUT6 and INV (an inverter takes a LUT in the fabric);
    CARRY4 and MUXF7/MUXF8 sit beside the LUTs of a slice and are not counted.
    """
    logic = sum(n for t, n in cells.items() if t.startswith("LUT") or t == "INV")
    lutram = sum(n * LUTRAM_SITES[t] for t, n in cells.items() if t in LUTRAM_SITES)
    ff = sum(n for t, n in cells.items() if t.startswith("FD"))
    bram = sum(n for t, n in cells.items() if t.startswith("RAMB36")) + 0.5 * sum(
        n for t, n in cells.items() if t.startswith("RAMB18"))
    dsp = sum(n for t, n in cells.items() if t.startswith("DSP"))
    return Resources(lut=logic + lutram, ff=ff, bram36=bram, dsp=dsp, lutram=lutram)


# -- memories: yosys's block RAM / LUT RAM choice ---------------------------------------

#: Block RAM modes (depth, width incl. parity) and yosys's cost of one block
#: (brams_xc4v.txt: RAMB18 "HALF" 129, RAMB36 "FULL" 257; 72 bits is the
#: simple-dual-port mode the one-write, one-read memories use).
RAMB18_MODES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))
RAMB36_MODES = ((512, 72), (1024, 36), (2048, 18), (4096, 9), (8192, 4), (16384, 2), (32768, 1))
RAMB18_COST, RAMB36_COST = 129, 257
#: LUT RAM (lutrams_xc5v.txt, simple dual port): RAM32M is 32 x 6 bits, RAM64M 64 x 3 bits, cost 8 each.
LUTRAM_COST = 8


@dataclass(frozen=True)
class MemoryMap:
    """How one memory maps: block RAM or LUT RAM primitives, and the logic around them."""

    depth: int
    width: int
    ramb18: int = 0
    ramb36: int = 0
    ram32m: int = 0
    ram64m: int = 0
    read_mux_luts: int = 0      # LUTs selecting between LUT RAM banks deeper than 64
    read_ffs: int = 0           # the synchronous read register when the memory is LUT RAM

    @property
    def resources(self) -> Resources:
        sites = 4 * (self.ram32m + self.ram64m)
        return Resources(lut=sites + self.read_mux_luts, ff=self.read_ffs, bram36=self.ramb36 + 0.5 * self.ramb18,
                         lutram=sites)

    def cells(self) -> dict[str, int]:
        """The primitive counts, named as yosys names them."""
        out = {"RAMB18E1": self.ramb18, "RAMB36E1": self.ramb36, "RAM32M": self.ram32m, "RAM64M": self.ram64m}
        return {k: v for k, v in out.items() if v}


def _blocks(depth: int, width: int, modes: Sequence[tuple[int, int]]) -> int:
    return min(-(-depth // d) * -(-width // w) for d, w in modes)


def memory_map(depth: int, width: int, sync_read: bool = True, block: bool = False) -> MemoryMap:
    """The primitives yosys 0.23 ``synth_xilinx`` chooses for a ``depth`` x ``width`` memory.

    Block RAM needs a synchronous read; of the candidates (RAMB18 and RAMB36
    in each depth x width mode, LUT RAM in 32- or 64-deep slices) the cheapest
    by yosys's library costs wins, ties going to block RAM. Matches every
    memory point of the measured table (``python -m bnnflow.costs --check``).
    ``block``: the memory carries ``ram_style = "block"`` (``bnn_mvtu``'s
    WEIGHT_RAM_BLOCK), so only the block RAM candidates count.
    """
    if depth <= 1 or width <= 0:
        return MemoryMap(depth, width, read_ffs=width if depth == 1 else 0)   # a register, not a memory
    options: list[tuple[int, MemoryMap]] = []
    if sync_read:
        n18, n36 = _blocks(depth, width, RAMB18_MODES), _blocks(depth, width, RAMB36_MODES)
        options.append((n36 * RAMB36_COST, MemoryMap(depth, width, ramb36=n36)))
        options.append((n18 * RAMB18_COST, MemoryMap(depth, width, ramb18=n18)))
        if block:
            return min(options, key=lambda o: o[0])[1]
    if depth <= 32:
        lut = MemoryMap(depth, width, ram32m=-(-width // 6), read_ffs=width if sync_read else 0)
        options.append(((lut.ram32m) * LUTRAM_COST, lut))
    else:
        banks = -(-depth // 64)
        mux = width * -(-(banks - 1) // 4) if banks > 1 else 0    # a 4:1 mux per LUT6 (+MUXF7/F8)
        lut = MemoryMap(depth, width, ram64m=banks * -(-width // 3), read_mux_luts=mux,
                        read_ffs=width if sync_read else 0)
        options.append((lut.ram64m * LUTRAM_COST, lut))
    # stable sort: block RAM options come first, so they win ties
    return min(options, key=lambda o: o[0])[1]


#: A weight memory yosys would put in LUT RAM gets block RAM instead (``bnn_mvtu`` WEIGHT_RAM_BLOCK = 1)
#: when its LUT RAM takes at least this many LUT sites (about 2% of a xc7z020) ...
BLOCK_WEIGHTS_MIN_LUTRAM = 1024
#: ... and its block RAM at most this many BRAM36 (a fifth of a xc7z020's 140, so a few such layers fit).
BLOCK_WEIGHTS_MAX_BRAM36 = 32


def weight_ram_block(spec: art.LayerSpec) -> bool:
    """Whether rtlgen asks for block RAM for ``spec``'s weight memory (``bnn_mvtu``'s WEIGHT_RAM_BLOCK).

    yosys (and Vivado) weigh one RAMB18 like 16 RAM32M, so a wide memory
    only a few words deep -- a conv layer with many PEs and lanes and few
    folds -- becomes hundreds of LUT RAM slices: 2048 x 18 bits is 1,368
    LUTs, or 28.5 BRAM36. LUTs bind before block RAM in most BNN designs
    (BNN-PYNQ's CNV uses 26k of 53k LUTs and 124 of 140 BRAM36 on a
    xc7z020), so such a memory goes to block RAM when it is big in LUTs and
    modest in block RAM (the two limits above). The cost model prices the
    choice (:func:`mvtu_memories`), so ``bnnflow fold`` sees its block RAM.
    """
    depth, word = spec.nf * spec.sf, spec.pe * spec.simd * spec.weight_bits
    auto = memory_map(depth, word, sync_read=True)
    if auto.resources.lutram < BLOCK_WEIGHTS_MIN_LUTRAM:
        return False
    return memory_map(depth, word, sync_read=True, block=True).resources.bram36 <= BLOCK_WEIGHTS_MAX_BRAM36


# -- units -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerShape:
    """What the cost of one ``bnn_mvtu`` depends on: kind, shape, folding and the widths."""

    kind: str
    mw: int            # inputs (unpadded)
    mh: int            # neurons
    pe: int
    simd: int
    input_bits: int = 1
    weight_bits: int = 1
    weight_encoding: str = art.SYM
    n_thresholds: int = -1     # -1: the kind's default (1 for threshold kinds, 0 for scores)
    affine_bits: int = 0
    mul_bits: int = 0
    conv: art.ConvSpec | None = None   # a convolution (its sliding-window unit and pool are priced too)

    @classmethod
    def of(cls, spec: art.LayerSpec) -> LayerShape:
        return cls(spec.kind, spec.in_features, spec.out_features, spec.pe, spec.simd, spec.input_bits,
                   spec.weight_bits, spec.weight_encoding, spec.n_thresholds, spec.affine_bits, spec.mul_bits,
                   spec.conv)

    def spec(self, index: int = 0) -> art.LayerSpec:
        """The artifact's LayerSpec of this layer (derived widths: one definition, in artifact.py)."""
        threshold = self.kind.endswith("_threshold")
        return art.LayerSpec(index=index, kind=self.kind, in_features=self.mw, out_features=self.mh, pe=self.pe,
                             simd=self.simd, input_bits=self.input_bits, weights="",
                             thresholds="" if threshold else None, weight_bits=self.weight_bits,
                             weight_encoding=self.weight_encoding, n_thresholds=self.n_thresholds,
                             affine="" if self.affine_bits else None, affine_bits=self.affine_bits,
                             mul_bits=self.mul_bits, conv=self.conv)

    @property
    def cycles(self) -> int:
        """Cycles per image: NF*SF per vector times the vectors (a conv's output pixels)."""
        return self.spec().cycles_per_image


def _clog2(n: int) -> int:
    return max(0, (n - 1).bit_length())


def mvtu_widths(spec: art.LayerSpec) -> dict[str, int]:
    """The widths ``rtl/bnn_mvtu.v`` (and its ``bnn_simd_dot``) derive (their localparams) from rtlgen's parameters."""
    from .rtlgen import mvtu_parameters

    p = mvtu_parameters(spec)
    k = p["WEIGHT_BITS"]
    wmax = (1 << (k - 1)) - 1 if p["WEIGHT_SIGNED"] else (1 << k) - 1
    lane_max = 1 if p["XNOR"] else ((1 << p["INPUT_BITS"]) - 1) * wmax
    dot_bits = _clog2(p["SIMD"] * lane_max + 1) + 1
    acc_w = max(p["ACC_BITS"], dot_bits) + 1
    nf, sf = p["MH"] // p["PE"], p["MW"] // p["SIMD"]
    param_pe = (p["N_THRESHOLDS"] * p["THRESHOLD_BITS"] if p["THRESHOLD"] else 2 * p["AFFINE_BITS"])
    return {"dot_bits": dot_bits, "acc_w": acc_w, "tb": p["THRESHOLD_BITS"] if p["THRESHOLD"] else 0,
            "in_w": p["SIMD"] * p["INPUT_BITS"], "out_w": p["PE"] * p["OUTPUT_BITS"],
            "depth": nf * sf, "word": p["PE"] * p["SIMD"] * k, "param_word": p["PE"] * param_pe,
            # a K > 1 lane's decoded weight: K + 1 bits (sym), K (int)
            "weight_value_bits": k if p["WEIGHT_SIGNED"] else k + 1}


def mvtu_memories(spec: art.LayerSpec) -> dict[str, MemoryMap]:
    """The memories of one ``bnn_mvtu`` and how yosys maps them (FIFO_DEPTH = 8, the default)."""
    w = mvtu_widths(spec)
    out = {"weights": memory_map(w["depth"], w["word"], sync_read=True, block=weight_ram_block(spec))}
    if w["param_word"]:
        out["thresholds" if spec.has_thresholds else "affine"] = memory_map(spec.nf, w["param_word"], sync_read=True)
    if spec.nf > 1:
        out["input_buffer"] = memory_map(spec.sf, w["in_w"], sync_read=False)
    out["fifo"] = memory_map(8, w["out_w"] + 1, sync_read=False)
    return out


#: yosys's synth_xilinx maps a multiplier to DSP48E1 slices when its product has at least this many
#: bits (``DSP_Y_MINWIDTH``, after width reduction) and both operands at least 2; narrower ones are LUTs.
DSP_MIN_PRODUCT_BITS = 9
#: One DSP48E1 multiplies a 25-bit by an 18-bit signed operand; wider products take a grid of them.
DSP_A_BITS, DSP_B_BITS = 25, 18


def dsp_slices(a_bits: int, b_bits: int) -> int:
    """DSP48E1 slices yosys uses for one signed ``a_bits`` x ``b_bits`` multiplier (0: it maps to LUTs)."""
    if a_bits + b_bits < DSP_MIN_PRODUCT_BITS or min(a_bits, b_bits) < 2:
        return 0
    a, b = max(a_bits, b_bits), min(a_bits, b_bits)
    return -(-a // DSP_A_BITS) * -(-b // DSP_B_BITS)


def mvtu_multipliers(spec: art.LayerSpec) -> dict[str, int]:
    """The multipliers of one ``bnn_mvtu``: per lane (K > 1 int layers) and per PE (an affine score).

    Operand widths as the RTL declares them: a lane multiplies the unsigned
    input (as a signed INPUT_BITS + 1) by the decoded weight (K + 1 bits sym,
    K int); the affine multiplies AFFINE_BITS by the dot (ACC_W + 1 bits for
    xnor's ``2*acc - MW``; an int dot is the sign-extended accumulator, whose
    copy of the sign bit yosys drops, so ACC_W).
    """
    w = mvtu_widths(spec)
    lane = (spec.input_bits + 1, w["weight_value_bits"]) if spec.mac == "int" and spec.weight_bits > 1 else None
    affine = (spec.affine_bits, w["acc_w"] + (spec.mac == "xnor")) if spec.affine_bits else None
    return {
        "lanes_on_dsp": spec.pe * spec.simd if lane and dsp_slices(*lane) else 0,
        "lane_dsp": spec.pe * spec.simd * dsp_slices(*lane) if lane else 0,
        "lane_lut_mul_bits": spec.pe * spec.simd * lane[0] * lane[1] if lane and not dsp_slices(*lane) else 0,
        "affine_dsp": spec.pe * dsp_slices(*affine) if affine else 0,
        "affine_lut_mul_bits": spec.pe * affine[0] * affine[1] if affine and not dsp_slices(*affine) else 0,
    }


def mvtu_features(spec: art.LayerSpec) -> dict[str, float]:
    """The model's logic features of one ``bnn_mvtu`` (see :data:`FEATURES`).

    Lanes: XNOR-popcount and add/subtract lanes (and the adder tree after
    multiply lanes) grow with the partial sum's width; a K > 1 lane's
    multiplier is either DSP slices (:func:`mvtu_multipliers`, counted
    outright, no LUT feature) or LUTs growing with its operand bits'
    product. Thresholds beyond the first add a compare each (the count of N
    compares); an affine score adds one multiplier per PE, likewise.
    """
    w = mvtu_widths(spec)
    lanes = spec.pe * spec.simd
    xnor = spec.mac == "xnor"      # rtlgen's XNOR parameter
    mults = mvtu_multipliers(spec)
    cmp_w = max(w["acc_w"], w["tb"]) + 1
    return {
        "const": 1.0,
        "xnor_lane_bits": lanes * w["dot_bits"] if xnor else 0.0,
        # adder trees: lanes whose products come out of DSP slices sum far cheaper (fitted apart)
        "int_lane_bits": (lanes - mults["lanes_on_dsp"]) * w["dot_bits"] if not xnor else 0.0,
        "dsp_lane_bits": float(mults["lanes_on_dsp"] * w["dot_bits"]),
        "lut_mul_bits": float(mults["lane_lut_mul_bits"] + mults["affine_lut_mul_bits"]),
        "acc_bits": spec.pe * w["acc_w"],
        "in_bits": w["in_w"] if spec.nf > 1 else 0.0,
        "compare_bits": spec.pe * (spec.n_thresholds - 1) * cmp_w if spec.n_thresholds > 1 else 0.0,
        # the registered input word feeds DSP slices' own input registers when the lanes are on DSPs
        "reg_bits": (0 if mults["lanes_on_dsp"] else w["in_w"]) + spec.pe * (w["dot_bits"] + w["acc_w"] + w["tb"]),
    }


def repack_features(in_elems: int, out_elems: int, elems: int, elems_pad: int, elem_bits: int = 1) -> dict[str, float]:
    """The model's features of one ``bnn_axis_repack``: its two banks and the width of its input word.

    Each bank word has its own write enable and the output word is a
    multiplexer over the bank's words (rtl/bnn_axis_repack.v), so the LUTs
    grow with a bank's bits, with the output multiplexer's bits times log2 of
    its output words, with the input words (write enables: a 1-PE producer
    of 512 elements needs 512 of them per bank, 1,554-2,282 LUT measured
    where bank bits predicted ~500) and with the output words (measured: bank
    bits alone left errors up to 42%; a share per input element did not
    improve the fit).
    """
    bits = elems * elem_bits
    out_words = max(2, elems_pad // max(1, out_elems))
    return {"const": 1.0, "bank_bits": float(bits), "out_mux_bits": elems_pad * elem_bits * math.log2(out_words),
            "in_elems": float(in_elems * elem_bits),
            # one write enable per input word of each bank: ELEMS / IN_ELEMS of them, many for a 1-PE producer
            "in_words": float(elems // max(1, in_elems)),
            # the output words the read side selects among (a measured improvement over out_mux_bits alone)
            "out_words": float(elems_pad // max(1, out_elems))}


def shell_features(specs: Sequence[art.LayerSpec]) -> dict[str, float]:
    """The model's features of the accelerator shell around the core (docs/ACCEL.md)."""
    first, last = specs[0], specs[-1]
    data_bits = max(max(s.pe * s.weight_word_bits, s.pe * s.neuron_param_bits) for s in specs)
    in_word, out_word = first.in_stream_bits, last.out_stream_bits
    return {"const": 1.0, "data_bits": float(data_bits),
            "stream_bits": float(in_word + accel.beat_bits_for(in_word) + out_word + accel.beat_bits_for(out_word))}


def swu_widths(params: dict[str, int]) -> dict[str, int]:
    """The widths ``rtl/bnn_swu.v`` derives (its localparams) from its parameters (rtlgen.swu_parameters)."""
    k, simd, bits = params["KERNEL"], params["SIMD"], params["ELEM_BITS"]
    cf = params["CH"] // simd
    ofm_h = params["IFM_H"] + 2 * params["PAD"] - k + 1
    ofm_w = params["IFM_W"] + 2 * params["PAD"] - k + 1
    wr = params["IFM_W"] * cf
    depth = 1 << _clog2(2 * k * wr)
    gw = _clog2(params["IFM_H"] * wr + depth + 1) + 2
    counters = (_clog2(cf + 1) + 2 * _clog2(k + 1) + _clog2(ofm_w + 1) + _clog2(ofm_h + 1)
                + _clog2(ofm_w + k) + 1 + _clog2(ofm_h + k) + 1)
    return {"word": simd * bits, "depth": depth, "gw": gw, "counter_bits": counters}


def swu_memories(params: dict[str, int]) -> dict[str, MemoryMap]:
    """The memories of one ``bnn_swu``: its line buffer ({TLAST, word}, synchronous read) and 4-word output FIFO."""
    w = swu_widths(params)
    return {"line_buffer": memory_map(w["depth"], w["word"] + 1, sync_read=True),
            "fifo": memory_map(4, w["word"], sync_read=False)}


def swu_features(params: dict[str, int]) -> dict[str, float]:
    """The model's logic features of one ``bnn_swu``.

    The word width (the pad-word multiplexer, the read register, the FIFO's
    output), the six GW-bit global word counters with their adders and
    compares (GW grows with the log of an image's words), and the window and
    pixel counters.
    """
    w = swu_widths(params)
    return {"const": 1.0, "word_bits": float(w["word"]), "addr_bits": float(w["gw"]),
            "counter_bits": float(w["counter_bits"])}


def maxpool_widths(params: dict[str, int]) -> dict[str, int]:
    """The widths ``rtl/bnn_maxpool.v`` derives from its parameters (rtlgen.maxpool_parameters)."""
    pe, bits, pool = params["PE"], params["ELEM_BITS"], params["POOL"]
    cf = params["CH"] // pe
    depth = (params["IFM_W"] // pool) * cf
    aw = _clog2(depth) if depth > 1 else 1
    counters = _clog2(cf + 1) + _clog2(pool + 1) + _clog2(params["IFM_W"] + 1) + _clog2(params["IFM_H"] + 1) + 2 * aw
    return {"word": pe * bits, "depth": max(depth, 2), "counter_bits": counters}


def maxpool_memories(params: dict[str, int]) -> dict[str, MemoryMap]:
    """The memories of one ``bnn_maxpool``: its row of running maxima (synchronous read) and output FIFO."""
    w = maxpool_widths(params)
    return {"row_buffer": memory_map(w["depth"], w["word"], sync_read=True),
            "fifo": memory_map(4, w["word"], sync_read=False)}


def maxpool_features(params: dict[str, int]) -> dict[str, float]:
    """The model's logic features of one ``bnn_maxpool``.

    Per element a max against the running maximum (an OR for 1-bit codes, a
    compare and a select for wider ones: ``cmp_bits``) and the bypass of the
    previous word's write-back (the word width), plus the position counters.
    """
    w = maxpool_widths(params)
    return {"const": 1.0, "word_bits": float(w["word"]),
            "cmp_bits": float(w["word"]) if params["ELEM_BITS"] > 1 else 0.0,
            "counter_bits": float(w["counter_bits"])}


#: Features each fitted quantity uses (unit -> quantity -> feature names).
FEATURES = {
    "mvtu": {"lut": ("const", "xnor_lane_bits", "int_lane_bits", "dsp_lane_bits", "lut_mul_bits", "acc_bits",
                     "in_bits", "compare_bits"),
             "ff": ("const", "reg_bits")},
    "repack": {"lut": ("const", "bank_bits", "out_mux_bits", "in_words", "out_words"),
               "ff": ("const", "bank_bits")},
    "shell": {"lut": ("const", "data_bits", "stream_bits"), "ff": ("const", "data_bits", "stream_bits")},
    "swu": {"lut": ("const", "word_bits", "addr_bits", "counter_bits"),
            "ff": ("const", "word_bits", "addr_bits", "counter_bits")},
    "maxpool": {"lut": ("const", "word_bits", "cmp_bits", "counter_bits"),
                "ff": ("const", "word_bits", "counter_bits")},
}


# -- the model ---------------------------------------------------------------------------


#: Units of convolutions (a table may predate them).
CONV_UNITS = ("swu", "maxpool")


class CostTableError(ValueError):
    """The cost table is missing, stale or malformed."""


class CostModel:
    """Per-unit resource estimates from the measured cost table (no yosys needed)."""

    def __init__(self, table: dict[str, Any]):
        try:
            self.table = table
            self.coef = {unit: {q: dict(c) for q, c in qs.items()} for unit, qs in table["model"].items()}
            for unit, qs in FEATURES.items():
                if unit in CONV_UNITS and unit not in self.coef:
                    continue        # a table measured before the conv units: conv layers are refused
                for q, names in qs.items():
                    missing = set(names) - set(self.coef[unit][q])
                    if missing:
                        raise KeyError(f"model.{unit}.{q} lacks {sorted(missing)}")
        except (KeyError, TypeError) as exc:
            raise CostTableError(f"cost table: malformed ({exc}); regenerate it with "
                                 f"`{REGENERATE_COMMAND}`") from None

    def _linear(self, unit: str, quantity: str, feats: dict[str, float]) -> float:
        if unit not in self.coef:
            raise CostTableError(f"cost table: no '{unit}' unit (measured before the convolution units); "
                                 f"regenerate it with `{REGENERATE_COMMAND}`")
        c = self.coef[unit][quantity]
        return max(0.0, sum(c[name] * feats[name] for name in FEATURES[unit][quantity]))

    def layer(self, shape: LayerShape | art.LayerSpec) -> Resources:
        """One ``bnn_mvtu``: fitted logic plus its memories as yosys maps them."""
        spec = shape.spec() if isinstance(shape, LayerShape) else shape
        feats = mvtu_features(spec)
        mults = mvtu_multipliers(spec)
        logic = Resources(lut=self._linear("mvtu", "lut", feats), ff=self._linear("mvtu", "ff", feats),
                          dsp=float(mults["lane_dsp"] + mults["affine_dsp"]))
        return logic + total(m.resources for m in mvtu_memories(spec).values())

    def repack(self, producer: art.LayerSpec, consumer: art.LayerSpec) -> Resources:
        """One ``bnn_axis_repack`` between ``producer`` and ``consumer`` (its parameters as rtlgen sets them)."""
        from .rtlgen import repack_parameters

        p = repack_parameters(producer, consumer)
        feats = repack_features(p["IN_ELEMS"], p["OUT_ELEMS"], p["ELEMS"], p["ELEMS_PAD"], p["ELEM_BITS"])
        return Resources(lut=self._linear("repack", "lut", feats), ff=self._linear("repack", "ff", feats))

    def swu(self, spec: art.LayerSpec) -> Resources:
        """The sliding-window unit ``bnn_swu`` of a conv layer: fitted logic plus its line buffer and FIFO."""
        from .rtlgen import swu_parameters

        params = swu_parameters(spec)
        feats = swu_features(params)
        logic = Resources(lut=self._linear("swu", "lut", feats), ff=self._linear("swu", "ff", feats))
        return logic + total(m.resources for m in swu_memories(params).values())

    def maxpool(self, spec: art.LayerSpec) -> Resources:
        """The max-pool unit ``bnn_maxpool`` after a conv layer (Resources() when it has no pool)."""
        from .rtlgen import maxpool_parameters

        params = maxpool_parameters(spec)
        if params is None:
            return Resources()
        feats = maxpool_features(params)
        logic = Resources(lut=self._linear("maxpool", "lut", feats), ff=self._linear("maxpool", "ff", feats))
        return logic + total(m.resources for m in maxpool_memories(params).values())

    def conv_units(self, spec: art.LayerSpec) -> Resources:
        """A conv layer's sliding-window unit and pool together (Resources() for a FC layer)."""
        return self.swu(spec) + self.maxpool(spec) if spec.is_conv else Resources()

    def repack_share(self, spec: art.LayerSpec, consumes: bool, produces: bool,
                     consumer_conv: bool = False) -> Resources:
        """The parts of the repackers around layer ``spec`` that its own folding sets.

        The repacker feeding the layer (``consumes``) holds the layer's MW
        inputs (a cost the shape fixes); the one after it (``produces``) takes
        words of the layer's PE elements, one write enable per word of the
        vector it holds (the layer's output, or one pixel's channels when the
        next layer is a convolution: ``consumer_conv``). The repack model is
        linear in those features, so the shares of two neighbours add up to
        :meth:`repack` exactly, and ``fold`` can price each layer on its own.
        """
        def part(feats: dict[str, float]) -> Resources:
            return Resources(lut=sum(self.coef["repack"]["lut"][n] * feats.get(n, 0.0)
                                     for n in FEATURES["repack"]["lut"]),
                             ff=sum(self.coef["repack"]["ff"][n] * feats.get(n, 0.0)
                                    for n in FEATURES["repack"]["ff"]))

        out = Resources()
        if consumes:
            # the repacker holds what the layer reads as a unit: one pixel's channels (a conv), else its MW
            elems = (spec.conv.channels, spec.conv.channels) if spec.is_conv else (spec.in_features,
                                                                                  spec.in_features_padded)
            feats = repack_features(1, spec.simd, *elems, spec.input_bits)
            feats["in_elems"] = feats["in_words"] = 0.0
            out = out + part(feats)
        if produces:
            elems = spec.out_features if consumer_conv else spec.out_elements
            out = out + part({"in_elems": float(spec.pe * spec.output_bits), "in_words": float(elems // spec.pe)})
        return out

    def shell(self, specs: Sequence[art.LayerSpec]) -> Resources:
        """The accelerator shell of ``bnnflow_accel`` (registers, run control, stream adapters, loader)."""
        feats = shell_features(specs)
        return Resources(lut=self._linear("shell", "lut", feats), ff=self._linear("shell", "ff", feats))

    def network(self, specs: Sequence[art.LayerSpec]) -> list[tuple[str, Resources]]:
        """(unit name, estimate) for every unit of the accelerator: layers (a conv's sliding window
        ``swu k`` before it and its pool ``pool k`` after), repackers, shell."""
        out = []
        for k, spec in enumerate(specs):
            if spec.is_conv:
                out.append((f"swu {k}", self.swu(spec)))
            out.append((f"layer {k}", self.layer(spec)))
            if spec.is_conv and spec.conv.pool:
                out.append((f"pool {k}", self.maxpool(spec)))
            if k + 1 < len(specs):
                out.append((f"repack {k}->{k + 1}", self.repack(spec, specs[k + 1])))
        out.append(("shell", self.shell(specs)))
        return out


_MODEL: CostModel | None = None


def load_table() -> dict[str, Any]:
    """The checked-in table ``bnnflow/cost_table.py`` (measured points, fitted model, errors)."""
    try:
        from .cost_table import TABLE
    except ImportError:
        raise CostTableError(f"bnnflow/cost_table.py is missing; create it with `{REGENERATE_COMMAND}` "
                             "(needs yosys)") from None
    return TABLE


def load_model() -> CostModel:
    """The model of the checked-in table (cached)."""
    global _MODEL
    if _MODEL is None:
        _MODEL = CostModel(load_table())
    return _MODEL


#: Resources of the rest of the block design that ``fold`` keeps free by default:
#: an AXI DMA (simple mode, MM2S + S2MM), the AXI interconnects / SmartConnect and
#: the reset block. Not measured here (no Vivado): an allowance sized after AMD's
#: published AXI DMA figures (PG021, a few thousand LUTs and FFs for 7-series) plus
#: the interconnect.
PLATFORM_ALLOWANCE = Resources(lut=4_000, ff=6_000, bram36=2)


# -- yosys ---------------------------------------------------------------------------------

REGENERATE_COMMAND = "python -m bnnflow.costs --regenerate"
TABLE_FILE = Path(__file__).resolve().with_name("cost_table.py")
YOSYS_SYNTH = "synth_xilinx -family xc7 -noiopad -flatten"


class YosysError(RuntimeError):
    """yosys is missing or a synthesis failed."""


def find_yosys() -> str | None:
    """The yosys executable (``$BNNFLOW_YOSYS`` or PATH), or None."""
    env = os.environ.get("BNNFLOW_YOSYS")
    return env if env else shutil.which("yosys")


def yosys_version(exe: str) -> str:
    proc = subprocess.run([exe, "-V"], capture_output=True, text=True)
    return proc.stdout.strip() or proc.stderr.strip()


def run_yosys(script: str, cwd: Path, timeout: float | None = None) -> tuple[dict[str, int], float]:
    """Run ``script`` (which must end in ``tee -q -o stat.json stat -json``); (cell counts, seconds)."""
    exe = find_yosys()
    if exe is None:
        raise YosysError("yosys not found on PATH (apt-get install yosys, or set BNNFLOW_YOSYS)")
    start = time.monotonic()
    try:
        proc = subprocess.run([exe, "-q", "-p", script], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise YosysError(f"yosys did not finish within {timeout:.0f} s (in {cwd})") from None
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise YosysError(f"yosys failed (exit {proc.returncode}) in {cwd}:\n{tail}")
    stat = json.loads((Path(cwd) / "stat.json").read_text())
    cells = {k: int(v) for k, v in stat["design"]["num_cells_by_type"].items()}
    return cells, seconds


def _param_text(params: dict[str, Any]) -> str:
    parts = []
    for k, v in params.items():
        parts.append(f'-set {k} "{v}"' if isinstance(v, str) else f"-set {k} {int(v)}")
    return " ".join(parts)


def synth_unit(module: str, params: dict[str, Any], files: dict[str, str], workdir: Path,
               memory_only: bool = False, timeout: float | None = None,
               library: Path | None = None) -> tuple[dict[str, int], float]:
    """Synthesize one library module with ``params``; ``files`` are extra files (.mem) to write.

    The module's sources come from ``library`` (an export's ``rtl/`` folder),
    else from the repository's ``rtl/``. ``memory_only`` stops after yosys's
    memory mapping (seconds, not minutes): enough to see which primitives each
    memory becomes.
    """
    from . import rtlgen

    workdir.mkdir(parents=True, exist_ok=True)
    names = list(rtlgen.LIBRARY)
    for name in names:
        src = (Path(library) / name) if library is not None else rtlgen.library_dir() / name
        shutil.copyfile(src, workdir / name)
    for name, text in files.items():
        (workdir / name).write_text(text)
    sources = " ".join(names)
    run = " -run begin:map_ffram" if memory_only else ""
    script = (f"read_verilog -defer {sources}; chparam {_param_text(params)} {module}; "
              f"{YOSYS_SYNTH} -top {module}{run}; tee -q -o stat.json stat -json")
    return run_yosys(script, workdir, timeout)


def synth_export_unit(rtl_dir: Path, unit: str, timeout: float | None = None) -> tuple[dict[str, int], float]:
    """Synthesize one unit of an export's generated design, in place (its .mem files are read there).

    ``unit``: ``"accel"`` (the whole ``bnnflow_accel``, flattened), ``"core"``
    (``bnnflow_top``), or ``"shell"`` (``bnnflow_accel`` with the core as a
    black box).
    """
    from . import rtlgen

    sources = " ".join(sorted(p.name for p in Path(rtl_dir).glob("*.v")))
    top = rtlgen.TOP_MODULE if unit == "core" else rtlgen.ACCEL_MODULE
    box = f"blackbox *{rtlgen.TOP_MODULE}; " if unit == "shell" else ""
    script = (f"read_verilog -defer {sources}; hierarchy -top {top}; {box}"
              f"{YOSYS_SYNTH} -top {top}; tee -q -o stat.json stat -json")
    with tempfile.TemporaryDirectory(prefix="bnnflow-yosys-") as tmp:
        # stat.json goes to a scratch copy of the folder: the export stays untouched
        work = Path(tmp)
        for p in Path(rtl_dir).iterdir():
            if p.suffix in (".v", ".mem"):
                shutil.copyfile(p, work / p.name)
        return run_yosys(script, work, timeout)


def mem_text(bits: np.ndarray) -> str:
    """``$readmemh`` text of (depth, width) bits, bit j of a word = column j (rtlgen's layout)."""
    from .packing import words_to_int

    digits = max(1, -(-bits.shape[1] // 4))
    return "".join(f"{w:0{digits}x}\n" for w in words_to_int(np.ascontiguousarray(bits, dtype=np.uint8), 1))


def mvtu_unit(shape: LayerShape, rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, str]]:
    """(``bnn_mvtu`` parameters, random .mem files) of ``shape``, as rtlgen would instantiate it."""
    from . import rtlgen

    spec = shape.spec()
    params = rtlgen.mvtu_parameters(spec, "w.mem", "t.mem")
    w = mvtu_widths(spec)
    files = {"w.mem": mem_text(rng.integers(0, 2, size=(w["depth"], w["word"]), dtype=np.uint8))}
    if rtlgen.has_param_memory(spec):
        files["t.mem"] = mem_text(rng.integers(0, 2, size=(spec.nf, w["param_word"]), dtype=np.uint8))
    return params, files


def memory_cells(cells: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in sorted(cells.items()) if k.startswith("RAM") or k in LUTRAM_SITES}


# -- the measured grid ----------------------------------------------------------------------

T, I, S, IS = art.XNOR_THRESHOLD, art.INT_THRESHOLD, art.XNOR_SCORE, art.INT_SCORE

#: bnn_mvtu points synthesized in full: (kind, MW, MH, PE, SIMD, input bits). Small enough for
#: seconds each, spread over lanes, SIMD, PE, input bits and padding; MH/PE and MW/SIMD give
#: memories deep enough for block RAM in most, as in real layers.
MVTU_GRID: tuple[tuple, ...] = (
    (T, 128, 64, 4, 8, 1),
    (T, 256, 64, 8, 32, 1),
    (T, 1024, 64, 4, 64, 1),
    (T, 512, 128, 16, 32, 1),
    (T, 1000, 32, 2, 100, 1),
    (T, 256, 256, 32, 16, 1),
    (S, 256, 10, 10, 32, 1),
    (S, 1024, 10, 5, 64, 1),
    (I, 784, 64, 4, 16, 8),
    (I, 512, 64, 4, 32, 8),
    (I, 256, 32, 1, 64, 8),
    (I, 128, 64, 8, 8, 8),
    (I, 784, 64, 8, 56, 1),
    (I, 256, 64, 4, 32, 1),
    (I, 512, 64, 4, 32, 4),
    (I, 64, 256, 16, 32, 5),
    (I, 256, 32, 4, 16, 2),
    # format v3: multiply lanes (K > 1 sym / int), multi-threshold compare banks, affine scores
    (I, 256, 64, 4, 32, 2, {"weight_bits": 2, "n_thresholds": 3}),
    (I, 256, 64, 8, 16, 2, {"weight_bits": 2, "weight_encoding": "int", "n_thresholds": 3}),
    (I, 128, 64, 4, 16, 8, {"weight_bits": 8, "weight_encoding": "int", "n_thresholds": 1}),
    (I, 256, 32, 4, 16, 4, {"weight_bits": 4, "n_thresholds": 15}),
    (I, 256, 64, 8, 32, 1, {"weight_bits": 1, "n_thresholds": 15}),
    (IS, 256, 10, 10, 16, 8, {"weight_bits": 8, "weight_encoding": "int", "affine_bits": 12, "mul_bits": 2}),
    (S, 256, 10, 5, 32, 1, {"affine_bits": 16}),
)

#: Weight-memory points (depth, width) mapped only (yosys stops after memory mapping).
#: Chosen around yosys's decisions: LUT RAM to 64 deep, LUT RAM or block RAM by width at 128-256
#: deep, RAMB18 or RAMB36 by depth and width beyond.
MEMORY_GRID: tuple[tuple[int, int], ...] = (
    (32, 36), (64, 200), (128, 8), (128, 36), (256, 8), (256, 200), (512, 8), (512, 72), (1024, 36),
    (1024, 200), (2048, 8), (2048, 200),
    (18, 2048),     # wide and shallow: WEIGHT_RAM_BLOCK (weight_ram_block), block RAM by ram_style
)

#: bnn_axis_repack points: (IN_ELEMS, OUT_ELEMS, ELEMS, ELEMS_PAD).
REPACK_GRID: tuple[tuple[int, int, int, int], ...] = (
    (32, 64, 1024, 1024), (64, 25, 1024, 1025), (16, 32, 256, 256), (32, 8, 1024, 1024),
    (4, 100, 64, 100), (128, 128, 512, 512),
    # 1- and 2-PE producers into narrow consumers (CNV's FC layers): hundreds of input words per bank
    (1, 8, 512, 512), (1, 1, 512, 512), (2, 8, 256, 256), (1, 4, 256, 256),
)

#: bnn_swu points: (IFM_H, IFM_W, CH, KERNEL, PAD, SIMD, ELEM_BITS) -- CNV's six sliding windows at
#: its two foldings' SIMD, a padded 5x5 and a 2-bit map; line buffers from 16 words of LUT RAM to block RAM.
SWU_GRID: tuple[tuple[int, int, int, int, int, int, int], ...] = (
    (32, 32, 3, 3, 0, 3, 8),
    (30, 30, 64, 3, 0, 32, 1),
    (14, 14, 64, 3, 0, 32, 1),
    (12, 12, 128, 3, 0, 64, 1),
    (5, 5, 128, 3, 0, 32, 1),
    (3, 3, 256, 3, 0, 32, 1),
    (16, 16, 32, 5, 2, 8, 2),
    (8, 8, 16, 3, 1, 16, 2),
)

#: bnn_maxpool points: (IFM_H, IFM_W, CH, POOL, PE, ELEM_BITS) -- CNV's two pools at several PE, 2-bit codes.
MAXPOOL_GRID: tuple[tuple[int, int, int, int, int, int], ...] = (
    (28, 28, 64, 2, 64, 1),
    (28, 28, 64, 2, 16, 1),
    (10, 10, 128, 2, 16, 1),
    (10, 10, 128, 2, 4, 1),
    (24, 24, 32, 2, 8, 2),
    (8, 8, 64, 2, 32, 2),
    (9, 9, 16, 3, 16, 1),
)

SWU_KEYS = ("IFM_H", "IFM_W", "CH", "KERNEL", "PAD", "SIMD", "ELEM_BITS")
MAXPOOL_KEYS = ("IFM_H", "IFM_W", "CH", "POOL", "PE", "ELEM_BITS")

#: Accelerator shells: random networks (input features, hidden, classes, input bits, [(PE, SIMD)]).
SHELL_GRID: tuple[tuple[int, tuple[int, ...], int, int, tuple[tuple[int, int], ...]], ...] = (
    (64, (64, 32), 10, 5, ((16, 32), (16, 32), (10, 32))),
    (64, (64, 32), 10, 8, ((2, 8), (1, 4), (1, 4))),
    (128, (256,), 10, 8, ((32, 128), (10, 64))),
    (784, (64,), 10, 8, ((64, 56), (10, 32))),
)


def _memory_point(depth: int, width: int, rng: np.random.Generator, work: Path) -> dict[str, Any]:
    # an XNOR score layer with PE = 1, SIMD = width, SF = 1: its weight memory is depth x width
    shape = LayerShape(S, width, depth, 1, width)
    params, files = mvtu_unit(shape, rng)
    cells, seconds = synth_unit("bnn_mvtu", params, files, work, memory_only=True)
    # the other memories (FIFO, 1-word input buffer) are small LUT RAM / registers: keep the weight memory's
    return {"depth": depth, "width": width, "cells": memory_cells(cells), "seconds": round(seconds, 2)}


#: The point groups of the table, in the order :func:`measure` synthesizes them.
UNITS = ("mvtu", "memory", "repack", "swu", "maxpool", "shell")


def measure(log=print, units: Sequence[str] = UNITS) -> dict[str, Any]:
    """Synthesize the grid points of ``units`` (default: all) with yosys; the raw points of the table."""
    from .testing import random_artifact
    from .folding import LayerFolding

    rng = np.random.default_rng(0)
    points: dict[str, list[dict[str, Any]]] = {"mvtu": [], "memory": [], "repack": [], "shell": [], "swu": [],
                                               "maxpool": []}
    with tempfile.TemporaryDirectory(prefix="bnnflow-costs-") as tmp:
        root = Path(tmp)
        for i, (kind, mw, mh, pe, simd, bits, *more) in enumerate(MVTU_GRID if "mvtu" in units else ()):
            widths = more[0] if more else {}
            shape = LayerShape(kind, mw, mh, pe, simd, bits, **widths)
            params, files = mvtu_unit(shape, rng)
            cells, seconds = synth_unit("bnn_mvtu", params, files, root / f"mvtu{i}")
            points["mvtu"].append({"kind": kind, "mw": mw, "mh": mh, "pe": pe, "simd": simd, "input_bits": bits,
                                   **({"widths": dict(widths)} if widths else {}),
                                   "cells": cells, "seconds": round(seconds, 2)})
            log(f"mvtu {kind} {mw}x{mh} PE={pe} SIMD={simd} bits={bits} {widths or ''}: "
                f"{cells_to_resources(cells)} ({seconds:.1f} s)")
        for i, (depth, width) in enumerate(MEMORY_GRID if "memory" in units else ()):
            p = _memory_point(depth, width, rng, root / f"mem{i}")
            points["memory"].append(p)
            log(f"memory {depth}x{width}: {p['cells']} ({p['seconds']} s)")
        for i, (ie, oe, el, pad) in enumerate(REPACK_GRID if "repack" in units else ()):
            params = {"IN_ELEMS": ie, "OUT_ELEMS": oe, "ELEM_BITS": 1, "ELEMS": el, "ELEMS_PAD": pad}
            cells, seconds = synth_unit("bnn_axis_repack", params, {}, root / f"repack{i}")
            points["repack"].append({"in_elems": ie, "out_elems": oe, "elems": el, "elems_pad": pad,
                                     "cells": cells, "seconds": round(seconds, 2)})
            log(f"repack {ie}->{oe} {el}/{pad}: {cells_to_resources(cells)} ({seconds:.1f} s)")
        for unit, grid, keys in (("swu", SWU_GRID, SWU_KEYS), ("maxpool", MAXPOOL_GRID, MAXPOOL_KEYS)):
            for i, values in enumerate(grid if unit in units else ()):
                params = dict(zip(keys, values))
                if unit == "swu":
                    params["PAD_CODE"] = 0
                cells, seconds = synth_unit(f"bnn_{unit}", params, {}, root / f"{unit}{i}")
                points[unit].append({"params": params, "cells": cells, "seconds": round(seconds, 2)})
                log(f"{unit} {params}: {cells_to_resources(cells)} ({seconds:.1f} s)")
        for i, (features, hidden, classes, bits, fold) in enumerate(SHELL_GRID if "shell" in units else ()):
            a = random_artifact(root / f"shell{i}", seed=i, input_features=features, hidden=hidden, classes=classes,
                                input_bits=bits, folding=[LayerFolding(pe, simd) for pe, simd in fold],
                                n_vectors=1, generate=("rtl",))
            cells, seconds = synth_export_unit(a.root / "rtl", "shell")
            cells = {k: v for k, v in cells.items() if not k.startswith("$")}   # the black-boxed core
            points["shell"].append({"input_features": features, "hidden": list(hidden), "classes": classes,
                                    "input_bits": bits, "folding": [list(f) for f in fold], "cells": cells,
                                    "seconds": round(seconds, 2)})
            log(f"shell {features}-{'-'.join(map(str, hidden))}-{classes} {fold}: {cells_to_resources(cells)} "
                f"({seconds:.1f} s)")
    return {unit: pts for unit, pts in points.items() if unit in units}


def _shell_specs(p: dict[str, Any]) -> list[art.LayerSpec]:
    sizes = [p["input_features"], *p["hidden"], p["classes"]]
    kinds = [I] + [T] * (len(sizes) - 3) + [S]
    return [LayerShape(k, mw, mh, pe, simd, p["input_bits"] if i == 0 else 1).spec(i)
            for i, (k, mw, mh, (pe, simd)) in enumerate(zip(kinds, sizes, sizes[1:], p["folding"]))]


def _unit_rows(points: dict[str, Any]) -> dict[str, list[tuple[dict[str, float], Resources, Resources]]]:
    """Per unit: (features, measured logic = measured minus modelled memories, measured total)."""
    rows: dict[str, list] = {"mvtu": [], "repack": [], "shell": []}
    for p in points["mvtu"]:
        spec = LayerShape(p["kind"], p["mw"], p["mh"], p["pe"], p["simd"], p["input_bits"],
                          **p.get("widths", {})).spec()
        measured = cells_to_resources(p["cells"])
        mem = total(m.resources for m in mvtu_memories(spec).values())
        logic = Resources(lut=measured.lut - mem.lut, ff=measured.ff - mem.ff)
        rows["mvtu"].append((mvtu_features(spec), logic, measured))
    for p in points["repack"]:
        measured = cells_to_resources(p["cells"])
        rows["repack"].append((repack_features(p["in_elems"], p["out_elems"], p["elems"], p["elems_pad"]),
                               measured, measured))
    for p in points["shell"]:
        measured = cells_to_resources(p["cells"])
        rows["shell"].append((shell_features(_shell_specs(p)), measured, measured))
    for unit, feats_of, mems_of in (("swu", swu_features, swu_memories), ("maxpool", maxpool_features,
                                                                           maxpool_memories)):
        if unit not in points:      # a table measured before the conv units
            continue
        rows[unit] = []
        for p in points[unit]:
            measured = cells_to_resources(p["cells"])
            mem = total(m.resources for m in mems_of(p["params"]).values())
            rows[unit].append((feats_of(p["params"]), Resources(lut=measured.lut - mem.lut, ff=measured.ff - mem.ff),
                               measured))
    return rows


def fit(points: dict[str, Any]) -> dict[str, Any]:
    """Least-squares coefficients of every unit's LUT and FF model (non-negative)."""
    model: dict[str, Any] = {}
    for unit, rows in _unit_rows(points).items():
        model[unit] = {}
        for quantity, names in FEATURES[unit].items():
            x = np.array([[f[n] for n in names] for f, _, _ in rows], dtype=float)
            y = np.array([getattr(logic, quantity) for _, logic, _ in rows], dtype=float)
            coef = _nnls(x, y)
            model[unit][quantity] = {n: round(float(c), 4) for n, c in zip(names, coef)}
    return model


def _nnls(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative least squares (Lawson-Hanson active set; small problems only)."""
    n = x.shape[1]
    passive = np.zeros(n, dtype=bool)
    coef = np.zeros(n)
    for _ in range(3 * n + 10):
        grad = x.T @ (y - x @ coef)
        if passive.all() or grad[~passive].max(initial=-1) <= 1e-9:
            break
        passive[np.argmax(np.where(passive, -np.inf, grad))] = True
        while True:
            sub = np.zeros(n)
            sub[passive] = np.linalg.lstsq(x[:, passive], y, rcond=None)[0]
            if (sub[passive] > 0).all():
                coef = sub
                break
            mask = passive & (sub <= 0)
            alpha = np.min(coef[mask] / (coef[mask] - sub[mask] + 1e-300))
            coef = coef + alpha * (sub - coef)
            passive &= coef > 1e-12
    return coef


def errors(table: dict[str, Any]) -> dict[str, Any]:
    """The model against the table's own points: per unit and quantity, the relative errors."""
    model = CostModel(table)
    points = table["points"]
    out: dict[str, Any] = {}
    for unit, rows in _unit_rows(points).items():
        for quantity in ("lut", "ff"):
            errs = []
            for (feats, _, measured), raw in zip(rows, points[unit]):
                if unit == "mvtu":
                    est = model.layer(LayerShape(raw["kind"], raw["mw"], raw["mh"], raw["pe"], raw["simd"],
                                                 raw["input_bits"], **raw.get("widths", {})))
                elif unit in ("swu", "maxpool"):     # fitted logic plus the memories as yosys maps them
                    mems = (swu_memories if unit == "swu" else maxpool_memories)(raw["params"])
                    est = Resources(lut=model._linear(unit, "lut", feats),
                                    ff=model._linear(unit, "ff", feats)) + total(m.resources for m in mems.values())
                else:
                    est = Resources(lut=model._linear(unit, "lut", feats), ff=model._linear(unit, "ff", feats))
                m = getattr(measured, quantity)
                errs.append((getattr(est, quantity) - m) / m if m else 0.0)
            out[f"{unit}.{quantity}"] = {"max_abs": round(max(abs(e) for e in errs), 4),
                                         "mean_abs": round(float(np.mean(np.abs(errs))), 4)}
    mism = []
    for p in points["memory"]:
        spec = LayerShape(S, p["width"], p["depth"], 1, p["width"]).spec()
        want = memory_map(p["depth"], p["width"], block=weight_ram_block(spec)).cells()
        got = {k: v for k, v in p["cells"].items() if k in ("RAMB18E1", "RAMB36E1", "RAM32M", "RAM64M")}
        # the measured cells include the output FIFO (8 deep: RAM32M) and nothing else of note
        fifo = memory_map(8, mvtu_widths(LayerShape(S, p["width"], p["depth"], 1, p["width"]).spec())["out_w"] + 1,
                          sync_read=False).cells()
        for k, v in fifo.items():
            got[k] = got.get(k, 0) - v
        got = {k: v for k, v in got.items() if v}
        if got != want:
            mism.append({"depth": p["depth"], "width": p["width"], "yosys": got, "model": want})
    out["memory"] = {"points": len(points["memory"]), "mismatches": mism}
    return out


def rtl_hashes() -> dict[str, str]:
    """sha256 (first 16 hex digits) of the RTL files the table was measured on."""
    from . import rtlgen

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in rtlgen.library_sources()}


def stale_files(table: dict[str, Any]) -> list[str]:
    """RTL files the table was measured on that changed or went away since (the estimates may have drifted).

    A library file added later (the convolution units) is not stale: the
    table makes no claim about it, and a measured module that starts to
    instantiate it changes itself.
    """
    now = rtl_hashes()
    then = table.get("rtl_sha256", {})
    return sorted(name for name in then if now.get(name) != then[name])


def regenerate(path: Path = TABLE_FILE, log=print, units: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure, fit and write the cost table module ``path``.

    ``units``: measure only these point groups (of :data:`UNITS`, e.g. after
    adding grid points of one unit) and keep the checked-in table's other
    points -- allowed only while that table is current (no RTL file it
    measured changed), since the points must all describe the same RTL.
    """
    exe = find_yosys()
    if exe is None:
        raise YosysError("yosys not found on PATH: the cost table is measured with yosys (apt-get install yosys)")
    unknown = sorted(set(units or ()) - set(UNITS))
    if unknown:
        raise ValueError(f"--units {','.join(unknown)}: unknown; the table's units are {', '.join(UNITS)}")
    start = time.monotonic()
    if not units:
        points = measure(log)
        table = {"command": REGENERATE_COMMAND, "yosys": yosys_version(exe), "synth": YOSYS_SYNTH,
                 "rtl_sha256": rtl_hashes(), "points": points, "seconds": round(time.monotonic() - start, 1)}
        return write_table(table, path)
    old = load_table()
    stale = stale_files(old)
    if stale:
        raise CostTableError(f"--units: the checked-in table is stale ({', '.join(stale)} changed since it was "
                             f"measured); measure every unit again: {REGENERATE_COMMAND}")
    if old.get("yosys") != yosys_version(exe):
        raise CostTableError(f"--units: the table was measured with {old.get('yosys')}, this is "
                             f"{yosys_version(exe)}; measure every unit again: {REGENERATE_COMMAND}")
    points = dict(old["points"])
    points.update(measure(log, units))
    remeasured = dict(old.get("remeasured", {}))
    remeasured.update({u: round(time.monotonic() - start, 1) for u in units})
    table = {k: v for k, v in old.items() if k not in ("model", "errors")}
    table.update(points=points, remeasured=remeasured)
    return write_table(table, path)


def refit(table: dict[str, Any], path: Path = TABLE_FILE) -> dict[str, Any]:
    """Fit the model again to ``table``'s measured points (after a change of FEATURES) and write it."""
    table = {k: v for k, v in table.items() if k not in ("model", "errors")}
    return write_table(table, path)


def write_table(table: dict[str, Any], path: Path) -> dict[str, Any]:
    """Fit the model to the table's points, add its errors and write the table module ``path``."""
    table = dict(table)
    table["model"] = fit(table["points"])
    table["errors"] = errors(table)
    text = ('"""Unit costs of bnnflow\'s RTL measured with yosys: generated, do not edit.\n\n'
            f"Regenerate with `{REGENERATE_COMMAND}` (needs yosys; a few minutes). bnnflow.costs\n"
            "reads TABLE: the fitted model, the measured points and the model's error on them.\n"
            '"""\n\n'
            f"TABLE = {pprint.pformat(table, width=110, sort_dicts=True)}\n")
    Path(path).write_text(text)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bnnflow.costs",
        description="Measure (--regenerate, needs yosys) or check (--check) bnnflow's unit-cost table "
                    "bnnflow/cost_table.py, the model behind `bnnflow fold` and `bnnflow report`.")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--regenerate", action="store_true", help="synthesize the grid with yosys and rewrite the table")
    group.add_argument("--refit", action="store_true", help="fit the model again to the table's measured points "
                                                            "(no yosys; after changing the model's features)")
    group.add_argument("--check", action="store_true", help="print the model's error on the table's own points and "
                                                            "whether the RTL changed since it was measured")
    parser.add_argument("--out", type=Path, default=TABLE_FILE, help="table module to write (default: %(default)s)")
    parser.add_argument("--units", help=f"with --regenerate: measure only these comma-separated point groups "
                                        f"({', '.join(UNITS)}) and keep the table's other points (the table must "
                                        "be current: same RTL, same yosys)")
    args = parser.parse_args(argv)
    if args.units and not args.regenerate:
        parser.error("--units goes with --regenerate")
    if args.regenerate:
        table = regenerate(args.out, units=args.units.split(",") if args.units else None)
        print(f"wrote {args.out} (measured in {table['seconds']} s)")
    elif args.refit:
        table = refit(load_table(), args.out)
        print(f"wrote {args.out} (refitted)")
    else:
        table = load_model().table
    print(describe_errors(table))
    stale = stale_files(table)
    print("RTL unchanged since the table was measured" if not stale else
          f"RTL changed since the table was measured: {', '.join(stale)} (regenerate: {REGENERATE_COMMAND})")
    return 0


def describe_errors(table: dict[str, Any]) -> str:
    """The model's error on the table's points, one line per unit and quantity, and its coefficients."""
    err = errors(table)
    again = table.get("remeasured", {})
    lines = [f"{table['yosys']}, {table['synth']}; measured in {table.get('seconds', '?')} s"
             + ("".join(f"; {unit} re-measured alone in {sec} s" for unit, sec in again.items()))]
    for key, e in err.items():
        if key == "memory":
            lines.append(f"memory map: {e['points']} points, {len(e['mismatches'])} differ from memory_map()"
                         + "".join(f"\n  {m}" for m in e["mismatches"]))
            continue
        unit, quantity = key.split(".")
        coef = ", ".join(f"{n} {c:g}" for n, c in table["model"][unit][quantity].items())
        lines.append(f"{unit:6s} {quantity.upper():3s}: mean |error| {100 * e['mean_abs']:.1f}%, max "
                     f"{100 * e['max_abs']:.1f}% over {len(table['points'][unit])} points; "
                     f"coefficients: {coef}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
