"""Generate the RTL view of an artifact: memory-init files and the network top.

``write_rtl`` writes into ``<export>/rtl/``:

- ``L{k}_weights.mem``: ``$readmemh`` file of layer k's weight memory, NF*SF
  words of PE*SIMD*K bits (K = weight_bits), PE p lane j at bits
  ``[(p*SIMD + j)*K +: K]`` (the lane's weight code), address nf*SF + sf.
- the neuron-parameter memory, NF words (address nf), every field two's
  complement: ``L{k}_thresholds.mem`` for threshold layers, PE*N*TB bits with
  threshold t of PE p at ``[(p*N + t)*TB +: TB]``; ``L{k}_affine.mem`` for a
  score layer with an affine, PE*2*AB bits with mul of PE p at
  ``[(p*2)*AB +: AB]`` and add at ``[(p*2+1)*AB +: AB]``; none for a plain
  score layer (docs/ARTIFACT.md, "RTL memory files").
  Both are built from the artifact's decoded view (``weight_lanes`` /
  ``folded_thresholds`` / ``folded_affine``) with
  :func:`bnnflow.packing.words_to_int`, so the bit layout lives in one place.
- ``bnnflow_top.v``: module ``bnnflow_top`` (the engine core), the layers'
  ``bnn_mvtu`` units chained through ``bnn_axis_repack`` converters; a
  convolution is ``bnn_swu`` (sliding window) -> ``bnn_mvtu`` (one vector per
  output pixel) [-> ``bnn_maxpool``], fed pixel by pixel (docs/RTL.md,
  "Convolutional layers in the top"). Its s_axis takes layer 0's input
  words, its m_axis gives the last layer's output (score) words; its
  ``cfg_*`` bus rewrites the weight and neuron-parameter (threshold / affine)
  memories.
- ``bnnflow_accel.v``: module ``bnnflow_accel``, the accelerator of
  docs/ACCEL.md around the core: AXI4-Lite control (``s_axi_control_*``),
  DMA-ready streams (``s_axis_*`` / ``m_axis_*`` with TKEEP), runtime
  parameter loading and the hardware signature.
- a copy of the RTL library (``bnn_*.v`` from the repository's ``rtl/``), so
  the folder is a complete, self-contained design.

Memory file paths: the top has one string parameter per file
(``L0_WEIGHT_FILE = "L0_weights.mem"``, ...) defaulting to the bare file name,
which ``$readmemh`` resolves against the simulator's working directory (or the
project's memory files in Vivado). bnnflow's simulation runner copies the
``.mem`` files into each run directory, so one compiled model serves every
artifact of the same shape; other flows may override the parameters with
absolute paths. The top's text depends only on shapes and folding (not on the
weights or the run name), so identical networks share a simulator build.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import accel
from . import artifact as art
from . import packing

#: The RTL library every generated design uses (dependency order).
LIBRARY = ("bnn_simd_dot.v", "bnn_threshold.v", "bnn_mvtu.v", "bnn_axis_repack.v",
           "bnn_out_fifo4.v", "bnn_swu.v", "bnn_maxpool.v",
           "bnn_axilite_ctrl.v", "bnn_accel_run.v", "bnn_beats_to_words.v", "bnn_words_to_beats.v",
           "bnn_param_loader.v")
#: The engine core (streams of engine words, parameter write bus): simulation and the tests use it.
TOP_MODULE = "bnnflow_top"
TOP_FILE = "bnnflow_top.v"
#: The accelerator of docs/ACCEL.md around the core: what the block design instantiates.
ACCEL_MODULE = "bnnflow_accel"
ACCEL_FILE = "bnnflow_accel.v"
#: Ports of ``bnnflow_accel`` the Vivado flow connects (stable names; docs/RTL.md).
ACCEL_CLOCK = "ap_clk"
ACCEL_RESET_N = "ap_rst_n"
ACCEL_CONTROL = "s_axi_control"
ACCEL_STREAM_IN = "s_axis"
ACCEL_STREAM_OUT = "m_axis"
#: AXI4-Lite channel signals of ``s_axi_control`` (direction, name, width), Vitis HLS naming.
AXI_LITE_PORTS = (("input", "AWADDR", accel.ADDR_BITS), ("input", "AWVALID", 1), ("output", "AWREADY", 1),
                  ("input", "WDATA", 32), ("input", "WSTRB", 4), ("input", "WVALID", 1), ("output", "WREADY", 1),
                  ("output", "BRESP", 2), ("output", "BVALID", 1), ("input", "BREADY", 1),
                  ("input", "ARADDR", accel.ADDR_BITS), ("input", "ARVALID", 1), ("output", "ARREADY", 1),
                  ("output", "RDATA", 32), ("output", "RRESP", 2), ("output", "RVALID", 1), ("input", "RREADY", 1))


def library_dir() -> Path:
    """The repository's ``rtl/`` folder (the hand-written modules)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "rtl", here / "rtl"):
        if (candidate / "bnn_mvtu.v").is_file():
            return candidate
    raise FileNotFoundError(
        f"bnnflow RTL library not found next to {here} (expected rtl/bnn_mvtu.v); "
        "use a source checkout of bnnflow (pip install -e .)")


def library_sources() -> list[Path]:
    root = library_dir()
    return [root / name for name in LIBRARY]


def weight_file(k: int) -> str:
    return f"L{k}_weights.mem"


def threshold_file(k: int) -> str:
    return f"L{k}_thresholds.mem"


def affine_file(k: int) -> str:
    """Layer ``k``'s (mul, add) memory file (affine score layers only)."""
    return f"L{k}_affine.mem"


def has_param_memory(layer: art.LayerSpec) -> bool:
    """Whether the layer's ``bnn_mvtu`` has a neuron-parameter memory (thresholds, or an affine's mul/add)."""
    return layer.neuron_param_bits > 0


def param_file(layer: art.LayerSpec) -> str | None:
    """Name of the layer's neuron-parameter ``.mem`` file: thresholds, affine, or None (plain score layer)."""
    if not has_param_memory(layer):
        return None
    return threshold_file(layer.index) if layer.has_thresholds else affine_file(layer.index)


def _hex_lines(words: list[int], width: int) -> str:
    digits = max(1, -(-width // 4))
    return "".join(f"{w:0{digits}x}\n" for w in words)


def weight_mem_text(artifact: art.Artifact, k: int) -> str:
    """``$readmemh`` text of layer ``k``'s weights: NF*SF words of PE*SIMD*K bits (K-bit codes)."""
    layer = artifact.layers[k]
    lanes = artifact.weight_lanes(k)                          # (PE, depth, SIMD) codes
    # word at address a = all PEs side by side: lane field p*SIMD + j is lanes[p, a, j]
    fields = np.ascontiguousarray(lanes.transpose(1, 0, 2)).reshape(layer.weight_depth, layer.pe * layer.simd)
    width = layer.pe * layer.weight_word_bits
    return _hex_lines(packing.words_to_int(fields, layer.weight_bits), width)


def threshold_mem_text(artifact: art.Artifact, k: int) -> str | None:
    """``$readmemh`` text of layer ``k``'s neuron-parameter memory (None for a plain score layer).

    Threshold layers: NF words of PE*N*TB bits, field p*N + t = threshold t of
    PE p. Affine score layers: NF words of PE*2*AB bits, field 2p = mul, 2p+1 =
    add of PE p. This is the memory the ``cfg_sel = 1`` writes reach.
    """
    layer = artifact.layers[k]
    if layer.has_thresholds:
        folded, field_bits = artifact.folded_thresholds(k), layer.threshold_bits   # (PE, NF, N)
    else:
        folded, field_bits = artifact.folded_affine(k), layer.affine_bits          # (PE, NF, 2) or None
    if folded is None:
        return None
    pe, nf, per_pe = folded.shape
    fields = np.ascontiguousarray(folded.transpose(1, 0, 2)).reshape(nf, pe * per_pe)
    return _hex_lines(packing.words_to_int(fields, field_bits), layer.pe * layer.neuron_param_bits)


def mvtu_parameters(layer: art.LayerSpec, weight_path: str | None = None,
                    threshold_path: str | None = None) -> dict[str, Any]:
    """``bnn_mvtu`` parameters of one layer (strings are the memory file names).

    Everything comes from the spec's properties; ``threshold_path`` names the
    neuron-parameter memory's file (thresholds or affine) and is dropped for a
    layer without one. ``N_THRESHOLDS`` / ``AFFINE_BITS`` are 0 where the layer
    has none (the RTL ignores them there).
    """
    params: dict[str, Any] = {
        "MW": layer.in_features_padded,
        "MH": layer.out_features,
        "PE": layer.pe,
        "SIMD": layer.simd,
        "INPUT_BITS": layer.input_bits,
        "XNOR": int(layer.mac == "xnor"),
        "WEIGHT_BITS": layer.weight_bits,
        "WEIGHT_SIGNED": int(layer.weight_encoding == art.INT),
        "THRESHOLD": int(layer.has_thresholds),
        "N_THRESHOLDS": layer.n_thresholds,
        "AFFINE_BITS": layer.affine_bits,
        "ACC_BITS": layer.acc_bits,
        "THRESHOLD_BITS": layer.threshold_bits,
        "OUTPUT_BITS": layer.output_bits,
        "REAL_MW": layer.in_features,
    }
    from .costs import weight_ram_block   # the one rule, which the cost model prices too

    if weight_ram_block(layer):
        params["WEIGHT_RAM_BLOCK"] = 1     # wide, shallow weights: block RAM rather than LUT RAM
    if weight_path is not None:
        params["WEIGHT_FILE"] = weight_path
    if threshold_path is not None and has_param_memory(layer):
        params["THRESHOLD_FILE"] = threshold_path
    return params


def repack_parameters(prev: art.LayerSpec, nxt: art.LayerSpec) -> dict[str, int]:
    """``bnn_axis_repack`` parameters between layer ``prev`` and layer ``nxt``.

    The repacker's vector is what ``nxt`` reads as a unit: one pixel's
    channels when ``nxt`` is a convolution (its sliding window takes the map
    pixel by pixel; SIMD divides the channels, so no padding), else the whole
    (pooled) output of ``prev`` -- MH elements after a FC layer, the map in HWC
    order after a conv -- padded to ``nxt``'s MW.
    """
    if nxt.is_conv:
        elems = pad = nxt.conv.channels
    else:
        elems, pad = prev.out_elements, nxt.in_features_padded
    return {
        "IN_ELEMS": prev.pe,
        "OUT_ELEMS": nxt.simd,
        "ELEM_BITS": prev.output_bits,
        "ELEMS": elems,
        "ELEMS_PAD": pad,
    }


def swu_parameters(layer: art.LayerSpec) -> dict[str, int]:
    """``bnn_swu`` parameters of a conv layer: its input map, window, SIMD, input codes and pad code."""
    from .sim import conv_units   # the units' parameter mapping and checks (no simulator needed)

    return conv_units.swu_parameters(layer.conv.geometry, layer.simd, layer.input_bits, layer.conv.pad_code)


def maxpool_parameters(layer: art.LayerSpec) -> dict[str, int] | None:
    """``bnn_maxpool`` parameters of a conv layer's pool (its output map, MH channels, PE), None without one."""
    from .sim import conv_units

    geom = layer.conv.pool_geometry(layer.out_features) if layer.is_conv else None
    return None if geom is None else conv_units.maxpool_parameters(geom, layer.pe, layer.output_bits)


def cycles_per_image(artifact: art.Artifact) -> int:
    """The network's cycles per image without backpressure: its slowest layer's NF*SF*pixels."""
    return max(l.cycles_per_image for l in artifact.layers)


def _verilog_value(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(int(value))


def _instance(module: str, name: str, params: dict[str, Any], ports: list[tuple[str, str]]) -> str:
    pw = max(len(k) for k in params)
    lines = [f"    {module} #("]
    lines += [f"        .{k:<{pw}} ({v}){',' if i < len(params) - 1 else ''}"
              for i, (k, v) in enumerate(params.items())]
    lines.append(f"    ) {name} (")
    qw = max(len(k) for k, _ in ports)
    lines += [f"        .{k:<{qw}} ({v}){',' if i < len(ports) - 1 else ''}" for i, (k, v) in enumerate(ports)]
    lines.append("    );")
    return "\n".join(lines)


def _stream_ports(prefix: str, s: str, m: str) -> list[tuple[str, str]]:
    return [("clk", "clk"), ("rst", "rst")] + [
        (f"s_axis_{sig}", f"{s}_{sig}") for sig in ("tdata", "tvalid", "tready", "tlast")] + [
        (f"m_axis_{sig}", f"{m}_{sig}") for sig in ("tdata", "tvalid", "tready", "tlast")]


def _index_bits(count: int) -> int:
    """Bits of an index 0..count-1, at least 1 (the RTL's counter widths)."""
    return max(1, (count - 1).bit_length())


@dataclass(frozen=True)
class ConfigBus:
    """Widths of the core's parameter write bus ``cfg_*`` (docs/RTL.md)."""

    layer_bits: int   # cfg_layer
    addr_bits: int    # cfg_addr: the deepest memory's address
    data_bits: int    # cfg_wdata: the widest memory word


def config_bus(artifact: art.Artifact) -> ConfigBus:
    """The ``cfg_*`` widths of ``artifact``'s core, from the parameter stream's segments (one definition)."""
    segments = accel.param_segments(artifact)
    return ConfigBus(layer_bits=_index_bits(len(artifact.layers)),
                     addr_bits=max(_index_bits(s.words) for s in segments),
                     data_bits=max(s.word_bits for s in segments))


def _param_file_parameter(layer: art.LayerSpec) -> str:
    """The top's parameter naming the layer's neuron-parameter file (only for layers that have one)."""
    return f"L{layer.index}_{'THRESHOLD' if layer.has_thresholds else 'AFFINE'}_FILE"


def _memory_files_params(artifact: art.Artifact) -> list[tuple[str, str]]:
    params = []
    for l in artifact.layers:
        params.append((f"L{l.index}_WEIGHT_FILE", weight_file(l.index)))
        name = param_file(l)
        if name is not None:
            params.append((_param_file_parameter(l), name))
    return params


def _param_block(params: list[tuple[str, str]]) -> list[str]:
    """``parameter NAME = value,`` lines (values already Verilog text)."""
    pw = max(len(k) for k, _ in params)
    return [f"    parameter {k:<{pw}} = {v}{',' if i < len(params) - 1 else ''}" for i, (k, v) in enumerate(params)]


def top_text(artifact: art.Artifact) -> str:
    """Verilog-2005 text of ``bnnflow_top`` (the engine core) for the artifact's layers."""
    layers = artifact.layers
    first, last = layers[0], layers[-1]
    in_w, out_w = first.in_stream_bits, last.out_stream_bits
    n = len(layers)
    bus = config_bus(artifact)

    head = [
        f"// {TOP_MODULE}: generated by bnnflow.rtlgen from an artifact manifest; do not edit.",
        "//",
        f"// {n} layer(s), each a bnn_mvtu; consecutive layers are joined by bnn_axis_repack.",
        "// A convolution is bnn_swu (sliding window: one im2col vector per output pixel)",
        "// -> bnn_mvtu (MW = kernel^2 * channels) [-> bnn_maxpool]; the repacker before it",
        "// regroups one pixel's channels, the one after it (before a FC layer) the whole map.",
    ]
    for l in layers:
        head.append(f"//   L{l.index}: {l.kind:<14} MW={l.in_features} (padded {l.in_features_padded}) MH={l.out_features} "
                    f"PE={l.pe} SIMD={l.simd} NF={l.nf} SF={l.sf} -> {l.nf * l.sf} cycles/vector")
        if l.is_conv:
            c = l.conv
            oh, ow = c.out_dims
            head.append(f"//       conv: {c.ifm_h}x{c.ifm_w}x{c.channels} map, {c.kernel}x{c.kernel} window, pad {c.pad} "
                        f"(code {c.pad_code}), {l.pixels} pixels -> {l.cycles_per_image} cycles/image"
                        + (f", {c.pool}x{c.pool} max-pool -> {oh}x{ow}x{l.out_features}" if c.pool else ""))
        head.append(f"//       {l.input_bits}-bit inputs, {l.weight_bits}-bit {l.weight_encoding} weights, "
                    + (f"{l.n_thresholds} threshold(s) of {l.threshold_bits} bits" if l.has_thresholds else
                       f"affine of {l.affine_bits} bits" if l.affine_bits else "no affine")
                    + f" -> {l.output_bits}-bit {'signed ' if l.output_signed else ''}outputs")
    head += [
        "//",
        f"// s_axis: layer 0's input stream, {in_w} bits = {first.simd} elements of {first.input_bits} bit(s)",
        f"//         (element j at bits [j*{first.input_bits} +: {first.input_bits}]), {first.in_stream_words} words per image;",
        (f"//         the input map pixel by pixel (HWC), {first.conv.channels // first.simd} word(s) per pixel."
         if first.is_conv else
         f"//         the host pads each image with zeros from {first.in_features} to {first.in_features_padded} elements."),
        f"// m_axis: the last layer's output, {out_w} bits = {last.pe} elements of {last.output_bits} bit(s)"
        f"{' (two' + chr(39) + 's complement)' if last.output_signed else ''},",
        f"//         {last.out_stream_words} words per image; element p of word k is output k*{last.pe} + p.",
        "// TLAST: the last output word of an image carries TLAST exactly when the last",
        "//        input word of that image did (docs/ARTIFACT.md \"Streams\").",
        f"// Throughput: one image per {cycles_per_image(artifact)} cycles (slowest layer's NF*SF*pixels) "
        "without backpressure.",
        "// cfg_*: the parameter write bus (docs/RTL.md): on a clock edge with cfg_we high,",
        "//        word cfg_addr of layer cfg_layer's weight (cfg_sel = 0) or neuron-parameter",
        "//        (cfg_sel = 1: thresholds or affine) memory becomes the low bits of cfg_wdata (the memory's",
        "//        width). Write only while no image is in flight; tie cfg_we low when unused.",
        "// Reset: rst is synchronous and active-high.",
        "// Memory files: the L*_FILE parameters name the $readmemh files (the memories'",
        "// power-on contents; default: bare file names, resolved against the simulator's",
        "// working directory).",
        "",
    ]

    body = [f"module {TOP_MODULE} #("]
    body += _param_block([(k, _verilog_value(v)) for k, v in _memory_files_params(artifact)])
    rng_in, rng_out = f"[{in_w - 1}:0]", f"[{out_w - 1}:0]"
    rng_layer, rng_addr, rng_data = (f"[{bus.layer_bits - 1}:0]", f"[{bus.addr_bits - 1}:0]",
                                     f"[{bus.data_bits - 1}:0]")
    rw = max(len(r) for r in (rng_in, rng_out, rng_layer, rng_addr, rng_data))

    def port(direction: str, rng: str, name: str, last: bool = False) -> str:
        return f"    {direction:<6} wire {rng:<{rw}} {name}{'' if last else ','}"

    body += [
        ") (",
        port("input", "", "clk"),
        port("input", "", "rst"),
        "",
        "    // images in: layer 0's input words",
        port("input", rng_in, "s_axis_tdata"),
        port("input", "", "s_axis_tvalid"),
        port("output", "", "s_axis_tready"),
        port("input", "", "s_axis_tlast"),
        "",
        "    // scores out: the last layer's output words",
        port("output", rng_out, "m_axis_tdata"),
        port("output", "", "m_axis_tvalid"),
        port("input", "", "m_axis_tready"),
        port("output", "", "m_axis_tlast"),
        "",
        "    // parameter write bus (only while idle)",
        port("input", "", "cfg_we"),
        port("input", rng_layer, "cfg_layer"),
        port("input", "", "cfg_sel"),
        port("input", rng_addr, "cfg_addr"),
        port("input", rng_data, "cfg_wdata", last=True),
        ");",
        "",
    ]

    # stream names: x{k} is layer k's input, y{k} its output; a conv's window words are
    # w{k} (bnn_swu -> bnn_mvtu), its pre-pool words c{k} (bnn_mvtu -> bnn_maxpool)
    def decl(name: str, width: int) -> list[str]:
        return [f"    wire [{width - 1}:0] {name}_tdata;",
                f"    wire {name}_tvalid, {name}_tready, {name}_tlast;"]

    for l in layers:
        if l.index > 0:
            body += decl(f"x{l.index}", l.in_stream_bits)
        if l.is_conv:
            body += decl(f"w{l.index}", l.in_stream_bits)
            if l.conv.pool:
                body += decl(f"c{l.index}", l.out_stream_bits)
        if l.index < n - 1:
            body += decl(f"y{l.index}", l.out_stream_bits)
    body.append("")
    for sig in ("tdata", "tvalid", "tlast"):
        body.append(f"    wire {'[' + str(in_w - 1) + ':0] ' if sig == 'tdata' else ''}x0_{sig} = s_axis_{sig};")
    body.append("    wire x0_tready;")
    body.append("    assign s_axis_tready = x0_tready;")
    body.append("")
    body.append("    // write enables of each layer's memories")
    for l in layers:
        body.append(f"    wire cfg_l{l.index} = cfg_we & (cfg_layer == {bus.layer_bits}'d{l.index});")
    body.append("")

    for l in layers:
        k = l.index
        out_name = f"y{k}" if k < n - 1 else "m_axis"
        mvtu_in = f"w{k}" if l.is_conv else f"x{k}"
        pooled = l.is_conv and bool(l.conv.pool)
        mvtu_out = f"c{k}" if pooled else out_name
        if l.is_conv:
            sp = {key: str(v) for key, v in swu_parameters(l).items()}
            c = l.conv
            body.append(f"    // layer {k}: sliding window over the {c.ifm_h}x{c.ifm_w}x{c.channels} map, "
                        f"{c.kernel}x{c.kernel}, pad {c.pad}: {l.pixels} vectors of {l.in_features} per image")
            body.append(_instance("bnn_swu", f"u_swu{k}", sp, _stream_ports("", f"x{k}", f"w{k}")))
            body.append("")
        params_k = mvtu_parameters(l)
        params_k = {key: str(v) for key, v in params_k.items()}
        params_k["WEIGHT_FILE"] = f"L{k}_WEIGHT_FILE"
        if has_param_memory(l):
            params_k["THRESHOLD_FILE"] = _param_file_parameter(l)
        params_k["CFG_ADDR_BITS"] = str(bus.addr_bits)
        params_k["CFG_BITS"] = str(bus.data_bits)
        body.append(f"    // layer {k}: {l.kind}, {l.in_features} -> {l.out_features}"
                    + (f", once per output pixel ({l.pixels})" if l.is_conv else ""))
        ports = _stream_ports("", mvtu_in, mvtu_out) + [
            ("cfg_weight_we", f"cfg_l{k} & ~cfg_sel"),
            ("cfg_threshold_we", f"cfg_l{k} & cfg_sel" if has_param_memory(l) else "1'b0"),
            ("cfg_addr", "cfg_addr"),
            ("cfg_wdata", "cfg_wdata"),
        ]
        body.append(_instance("bnn_mvtu", f"u_layer{k}", params_k, ports))
        body.append("")
        if pooled:
            pp = {key: str(v) for key, v in maxpool_parameters(l).items()}
            oh, ow = l.conv.out_dims
            body.append(f"    // layer {k}: {l.conv.pool}x{l.conv.pool} max-pool -> {oh}x{ow}x{l.out_features}")
            body.append(_instance("bnn_maxpool", f"u_pool{k}", pp, _stream_ports("", f"c{k}", out_name)))
            body.append("")
        if k < n - 1:
            nxt = layers[k + 1]
            rpv = repack_parameters(l, nxt)
            rp = {key: str(v) for key, v in rpv.items()}
            unit = "one pixel" if nxt.is_conv else ("the map" if l.is_conv else "the vector")
            body.append(f"    // layer {k} -> {k + 1}: {l.pe} x {l.output_bits}-bit words -> "
                        f"{nxt.simd} x {nxt.input_bits}-bit words, {unit}: pad {rpv['ELEMS']} -> {rpv['ELEMS_PAD']}")
            body.append(_instance("bnn_axis_repack", f"u_repack{k}", rp, _stream_ports("", f"y{k}", f"x{k + 1}")))
            body.append("")
    body.append("endmodule")
    return "\n".join(head + body) + "\n"


def _packed(values: list[int]) -> str:
    """A Verilog concatenation of 32-bit fields, values[0] in the lowest bits."""
    return "{" + ", ".join(f"32'd{int(v)}" for v in reversed(values)) + "}"


def loader_parameters(artifact: art.Artifact) -> dict[str, Any]:
    """``bnn_param_loader`` parameters: the parameter stream's segment table (``accel.param_segments``)."""
    segments = accel.param_segments(artifact)
    bus = config_bus(artifact)
    return {
        "BEAT_BITS": accel.input_stream(artifact).beat_bits,
        "LAYER_BITS": bus.layer_bits,
        "ADDR_BITS": bus.addr_bits,
        "DATA_BITS": bus.data_bits,
        "SEGMENTS": len(segments),
        "SEG_WORDS": [s.words for s in segments],
        "SEG_WORD_BITS": [s.word_bits for s in segments],
        "SEG_BEATS": [s.beats_per_word for s in segments],
        "SEG_LAYER": [s.layer for s in segments],
        "SEG_SEL": [0 if s.memory == "weights" else 1 for s in segments],
    }


def _verilog_param(value: Any) -> str:
    return _packed(value) if isinstance(value, list) else _verilog_value(value)


def accel_text(artifact: art.Artifact) -> str:
    """Verilog-2005 text of ``bnnflow_accel``: the accelerator of docs/ACCEL.md around ``bnnflow_top``."""
    inp, out = accel.input_stream(artifact), accel.output_stream(artifact)
    bus = config_bus(artifact)
    signature = accel.signature(artifact)
    param_beats = accel.param_beats(artifact)
    in_bytes, out_bytes = inp.beat_bits // 8, out.beat_bits // 8

    head = [
        f"// {ACCEL_MODULE}: generated by bnnflow.rtlgen from an artifact manifest; do not edit.",
        "//",
        "// The accelerator of docs/ACCEL.md around the engine core bnnflow_top: DMA-ready",
        "// AXI4-Streams, the AXI4-Lite register map of the Vitis HLS IP (one driver for",
        "// both), runtime loading of weights and thresholds, the hardware signature.",
        "//",
        f"// Hardware signature 0x{signature:08x} (parameter SIGNATURE, bnnflow.accel.signature).",
        f"// s_axis: {inp.beat_bits}-bit beats (TKEEP {in_bytes} bits, expected all ones); an image is",
        f"//         {inp.words_per_image} word(s) of {inp.word_bits} bits, {inp.beats_per_word} beat(s) per word, "
        f"{inp.words_per_image * inp.beats_per_word} beat(s) per image;",
        f"//         a load run takes {param_beats} beats (bnnflow.accel.param_stream).",
        f"// m_axis: {out.beat_bits}-bit beats (TKEEP {out_bytes} bits, all ones); an image's scores are",
        f"//         {out.words_per_image} word(s) of {out.word_bits} bits, {out.beats_per_word} beat(s) per word, "
        f"{out.words_per_image * out.beats_per_word} beat(s) per image.",
        "// Bits above a word in its last beat are padding: zero out; in, a nonzero padding",
        "// bit or a clear TKEEP bit sets STATUS_FORMAT_ERROR. TLAST out is on an image's",
        "// last beat exactly when TLAST in was on that image's last beat.",
        "//",
        f"// Ports (stable names; the Vivado flow uses them): {ACCEL_CLOCK}, {ACCEL_RESET_N} (active-low,",
        "// synchronous to ap_clk: connect proc_sys_reset's peripheral_aresetn of the same",
        f"// clock), {ACCEL_CONTROL}_* (AXI4-Lite slave, Vitis HLS names), {ACCEL_STREAM_IN}_* / "
        f"{ACCEL_STREAM_OUT}_*",
        "// (AXI4-Stream: connect the AXI DMA's M_AXIS_MM2S / S_AXIS_S2MM), interrupt",
        "// (level, GIE & ISR; optional). All interfaces are in the ap_clk domain.",
        "//",
        "// Inside: bnn_axilite_ctrl (registers) -> bnn_accel_run (runs: counts beats, gates",
        "// s_axis_tready, reports status) -> s_axis beats go to bnn_beats_to_words -> core",
        "// (infer) or to bnn_param_loader -> the core's cfg_* bus (load); the core's words",
        "// leave through bnn_words_to_beats on m_axis.",
        "",
    ]

    mem_params = _memory_files_params(artifact)
    params = [("SIGNATURE", f"32'h{signature:08x}")] + [(k, _verilog_value(v)) for k, v in mem_params]
    body = [f"module {ACCEL_MODULE} #("]
    body += _param_block(params)
    ports: list[tuple[str, str, str, str]] = []   # (attributes, direction, range, name)
    ports.append(('(* X_INTERFACE_INFO = "xilinx.com:signal:clock:1.0 ap_clk CLK" *)\n'
                  f'    (* X_INTERFACE_PARAMETER = "XIL_INTERFACENAME ap_clk, ASSOCIATED_BUSIF '
                  f'{ACCEL_CONTROL}:{ACCEL_STREAM_IN}:{ACCEL_STREAM_OUT}, ASSOCIATED_RESET {ACCEL_RESET_N}" *)',
                  "input", "", ACCEL_CLOCK))
    ports.append((f'(* X_INTERFACE_INFO = "xilinx.com:signal:reset:1.0 {ACCEL_RESET_N} RST" *)\n'
                  f'    (* X_INTERFACE_PARAMETER = "XIL_INTERFACENAME {ACCEL_RESET_N}, POLARITY ACTIVE_LOW" *)',
                  "input", "", ACCEL_RESET_N))
    for direction, name, width in AXI_LITE_PORTS:
        ports.append(("", direction, f"[{width - 1}:0]" if width > 1 else "", f"{ACCEL_CONTROL}_{name}"))
    for prefix, direction, bits, in_dir in ((ACCEL_STREAM_IN, "input", inp.beat_bits, True),
                                            (ACCEL_STREAM_OUT, "output", out.beat_bits, False)):
        back = "output" if in_dir else "input"
        ports += [("", direction, f"[{bits - 1}:0]", f"{prefix}_tdata"),
                  ("", direction, f"[{bits // 8 - 1}:0]", f"{prefix}_tkeep"),
                  ("", direction, "", f"{prefix}_tvalid"),
                  ("", back, "", f"{prefix}_tready"),
                  ("", direction, "", f"{prefix}_tlast")]
    ports.append(('(* X_INTERFACE_INFO = "xilinx.com:signal:interrupt:1.0 interrupt INTERRUPT" *)\n'
                  '    (* X_INTERFACE_PARAMETER = "XIL_INTERFACENAME interrupt, SENSITIVITY LEVEL_HIGH, '
                  'PortWidth 1" *)',
                  "output", "", "interrupt"))
    rw = max(len(r) for _, _, r, _ in ports)
    body.append(") (")
    for i, (attrs, direction, rng, name) in enumerate(ports):
        if attrs:
            body.append(f"    {attrs}")
        line = f"    {direction:<6} wire {rng:<{rw}} {name}{',' if i < len(ports) - 1 else ''}"
        if name == "interrupt":   # the Vitis HLS name, also a C++ word Verilator warns about
            line = f"    /* verilator lint_off SYMRSVDWORD */\n{line}\n    /* verilator lint_on SYMRSVDWORD */"
        body.append(line)
    body += [");", ""]

    ib, ob = inp.beat_bits, out.beat_bits
    body += [
        f"    wire clk = {ACCEL_CLOCK};",
        f"    wire rst = ~{ACCEL_RESET_N};",
        "",
        "    // control registers <-> run controller",
        "    wire        ap_start, ap_done, ap_ready, ap_idle, status_vld;",
        "    wire [31:0] reps, mode, status;",
        "    // input path",
        "    wire        img_tvalid, img_tready, par_tvalid, par_tready;",
        f"    wire [{inp.word_bits - 1}:0] x_tdata;",
        "    wire        x_tvalid, x_tready, x_tlast;",
        "    // output path",
        f"    wire [{out.word_bits - 1}:0] y_tdata;",
        "    wire        y_tvalid, y_tready, y_tlast;",
        "    // parameter writes, errors",
        "    wire        load_start, load_done, load_len_err, load_fmt_err, in_fmt_err, err_clear;",
        "    wire        cfg_we, cfg_sel;",
        f"    wire [{bus.layer_bits - 1}:0] cfg_layer;",
        f"    wire [{bus.addr_bits - 1}:0] cfg_addr;",
        f"    wire [{bus.data_bits - 1}:0] cfg_wdata;",
        "",
    ]
    ctrl_params = {"ADDR_BITS": accel.ADDR_BITS, "ADDR_CTRL": accel.CTRL, "ADDR_GIE": accel.GIE,
                   "ADDR_IER": accel.IER, "ADDR_ISR": accel.ISR, "ADDR_REPS": accel.REPS, "ADDR_MODE": accel.MODE,
                   "ADDR_SIGNATURE": accel.SIGNATURE, "ADDR_SIGNATURE_CTRL": accel.SIGNATURE_CTRL,
                   "ADDR_STATUS": accel.STATUS, "ADDR_STATUS_CTRL": accel.STATUS_CTRL}
    ctrl_ports = [("clk", "clk"), ("rst", "rst")]
    ctrl_ports += [(f"s_axi_{name.lower()}", f"{ACCEL_CONTROL}_{name}") for _, name, _ in AXI_LITE_PORTS]
    ctrl_ports += [("interrupt", "interrupt"), ("ap_start", "ap_start"), ("ap_done", "ap_done"),
                   ("ap_ready", "ap_ready"), ("ap_idle", "ap_idle"), ("reps", "reps"), ("mode", "mode"),
                   ("signature", "SIGNATURE"), ("signature_vld", "status_vld"),
                   ("status", "status"), ("status_vld", "status_vld")]
    body.append("    // AXI4-Lite registers (docs/ACCEL.md); every run writes signature and status")
    body.append(_instance("bnn_axilite_ctrl", "u_ctrl", {k: str(v) for k, v in ctrl_params.items()}, ctrl_ports))
    body.append("")

    run_params = {"IN_BEATS": inp.words_per_image * inp.beats_per_word,
                  "OUT_BEATS": out.words_per_image * out.beats_per_word,
                  "MODE_INFER": accel.MODE_INFER, "MODE_LOAD": accel.MODE_LOAD,
                  "STATUS_FORMAT_ERROR": accel.STATUS_FORMAT_ERROR,
                  "STATUS_LOAD_LENGTH_ERROR": accel.STATUS_LOAD_LENGTH_ERROR,
                  "STATUS_BAD_MODE": accel.STATUS_BAD_MODE}
    run_ports = [("clk", "clk"), ("rst", "rst"), ("ap_start", "ap_start"), ("ap_idle", "ap_idle"),
                 ("ap_done", "ap_done"), ("ap_ready", "ap_ready"), ("reps", "reps"), ("mode", "mode"),
                 ("status", "status"), ("status_vld", "status_vld"),
                 ("s_tvalid", f"{ACCEL_STREAM_IN}_tvalid"), ("s_tready", f"{ACCEL_STREAM_IN}_tready"),
                 ("img_tvalid", "img_tvalid"), ("img_tready", "img_tready"),
                 ("par_tvalid", "par_tvalid"), ("par_tready", "par_tready"),
                 ("m_fire", f"{ACCEL_STREAM_OUT}_tvalid & {ACCEL_STREAM_OUT}_tready"),
                 ("load_start", "load_start"), ("load_done", "load_done"), ("load_len_err", "load_len_err"),
                 ("err_clear", "err_clear"), ("fmt_err", "in_fmt_err | load_fmt_err")]
    body.append("    // runs: infer (reps images), load (the parameter stream), bad mode")
    body.append(_instance("bnn_accel_run", "u_run", {k: str(v) for k, v in run_params.items()}, run_ports))
    body.append("")

    in_ports = [("clk", "clk"), ("rst", "rst"),
                ("s_axis_tdata", f"{ACCEL_STREAM_IN}_tdata"), ("s_axis_tkeep", f"{ACCEL_STREAM_IN}_tkeep"),
                ("s_axis_tvalid", "img_tvalid"), ("s_axis_tready", "img_tready"),
                ("s_axis_tlast", f"{ACCEL_STREAM_IN}_tlast"),
                ("m_axis_tdata", "x_tdata"), ("m_axis_tvalid", "x_tvalid"), ("m_axis_tready", "x_tready"),
                ("m_axis_tlast", "x_tlast"), ("err_clear", "err_clear"), ("err", "in_fmt_err")]
    body.append(f"    // images: {ib}-bit beats -> {inp.word_bits}-bit words of layer 0")
    body.append(_instance("bnn_beats_to_words", "u_in", {"BEAT_BITS": str(ib), "WORD_BITS": str(inp.word_bits)},
                          in_ports))
    body.append("")

    load_ports = [("clk", "clk"), ("rst", "rst"), ("start", "load_start"), ("done", "load_done"),
                  ("s_axis_tdata", f"{ACCEL_STREAM_IN}_tdata"), ("s_axis_tkeep", f"{ACCEL_STREAM_IN}_tkeep"),
                  ("s_axis_tvalid", "par_tvalid"), ("s_axis_tready", "par_tready"),
                  ("s_axis_tlast", f"{ACCEL_STREAM_IN}_tlast"),
                  ("cfg_we", "cfg_we"), ("cfg_layer", "cfg_layer"), ("cfg_sel", "cfg_sel"),
                  ("cfg_addr", "cfg_addr"), ("cfg_wdata", "cfg_wdata"),
                  ("err_clear", "err_clear"), ("len_err", "load_len_err"), ("fmt_err", "load_fmt_err")]
    lp = {k: _verilog_param(v) for k, v in loader_parameters(artifact).items()}
    segs = accel.param_segments(artifact)
    body.append(f"    // parameters: {len(segs)} segment(s), {param_beats} beats -> memory writes "
                f"(segment order of bnnflow.accel.param_segments)")
    body.append(_instance("bnn_param_loader", "u_load", lp, load_ports))
    body.append("")

    core_params = {k: k for k, _ in mem_params}
    core_ports = [("clk", "clk"), ("rst", "rst"),
                  ("s_axis_tdata", "x_tdata"), ("s_axis_tvalid", "x_tvalid"), ("s_axis_tready", "x_tready"),
                  ("s_axis_tlast", "x_tlast"),
                  ("m_axis_tdata", "y_tdata"), ("m_axis_tvalid", "y_tvalid"), ("m_axis_tready", "y_tready"),
                  ("m_axis_tlast", "y_tlast"),
                  ("cfg_we", "cfg_we"), ("cfg_layer", "cfg_layer"), ("cfg_sel", "cfg_sel"),
                  ("cfg_addr", "cfg_addr"), ("cfg_wdata", "cfg_wdata")]
    body.append("    // the engine core")
    body.append(_instance(TOP_MODULE, "u_core", core_params, core_ports))
    body.append("")

    out_ports = [("clk", "clk"), ("rst", "rst"),
                 ("s_axis_tdata", "y_tdata"), ("s_axis_tvalid", "y_tvalid"), ("s_axis_tready", "y_tready"),
                 ("s_axis_tlast", "y_tlast"),
                 ("m_axis_tdata", f"{ACCEL_STREAM_OUT}_tdata"), ("m_axis_tkeep", f"{ACCEL_STREAM_OUT}_tkeep"),
                 ("m_axis_tvalid", f"{ACCEL_STREAM_OUT}_tvalid"), ("m_axis_tready", f"{ACCEL_STREAM_OUT}_tready"),
                 ("m_axis_tlast", f"{ACCEL_STREAM_OUT}_tlast")]
    body.append(f"    // scores: {out.word_bits}-bit words -> {ob}-bit beats")
    body.append(_instance("bnn_words_to_beats", "u_out", {"BEAT_BITS": str(ob), "WORD_BITS": str(out.word_bits)},
                          out_ports))
    body.append("")
    body.append("endmodule")
    return "\n".join(head + body) + "\n"


def write_rtl(artifact: art.Artifact, out_dir: Path) -> dict[str, Any]:
    """Write memory files, the core, the accelerator and the RTL library into ``out_dir/rtl/``.

    Returns the manifest's ``rtl`` section; every string / list-of-strings value
    is a path relative to ``out_dir`` (the writer checksums them). ``top`` /
    ``top_module`` name the engine core (what simulation drives), ``accel_top``
    / ``accel_module`` the accelerator (what the block design instantiates).
    """
    out_dir = Path(out_dir)
    rtl = out_dir / "rtl"
    rtl.mkdir(parents=True, exist_ok=True)
    memories = []
    for k in range(len(artifact.layers)):
        (rtl / weight_file(k)).write_text(weight_mem_text(artifact, k))
        memories.append(f"rtl/{weight_file(k)}")
        name = param_file(artifact.layers[k])
        if name is not None:
            (rtl / name).write_text(threshold_mem_text(artifact, k))
            memories.append(f"rtl/{name}")
    sources = []
    for src in library_sources():
        shutil.copyfile(src, rtl / src.name)
        sources.append(f"rtl/{src.name}")
    (rtl / TOP_FILE).write_text(top_text(artifact))
    (rtl / ACCEL_FILE).write_text(accel_text(artifact))
    return {
        "top": f"rtl/{TOP_FILE}",
        "top_module": TOP_MODULE,
        "accel_top": f"rtl/{ACCEL_FILE}",
        "accel_module": ACCEL_MODULE,
        "sources": sources + [f"rtl/{TOP_FILE}", f"rtl/{ACCEL_FILE}"],
        "memories": memories,
        "cycles_per_image": cycles_per_image(artifact),
    }
