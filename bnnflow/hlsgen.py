"""Generate the HLS C++ header of one artifact: ``<export>/hls/bnnflow_params.h``.

The header holds everything network-specific -- typed ``constexpr`` layer
configuration, the accelerator interface's numbers (beat widths, signature,
modes, status bits, from :mod:`bnnflow.accel`), the writable weight and
neuron-parameter memories, ``bnnflow::infer()`` (the DATAFLOW chain: one
instance of the generic ``bnn::mvtu`` template per layer, its arithmetic
chosen by the layer's parameters; a convolution adds ``bnn::sliding_window``
before it and, when it pools, ``bnn::max_pool`` after it) and
``bnnflow::load_parameters()`` (the
parameter stream, segment by segment) -- so ``hls/bnn_top.cpp`` is the same
for every network. All data comes from the artifact's decoded views
(:meth:`Artifact.weight_lanes`, :meth:`Artifact.folded_thresholds`,
:meth:`Artifact.folded_affine`), :func:`bnnflow.packing.words_to_int` and
:mod:`bnnflow.accel`; the bit layout is not restated here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import accel
from . import artifact as art
from . import packing
from .folding import FoldingError

HEADER = "hls/bnnflow_params.h"

#: Literals per line in the generated arrays.
_PER_LINE = 8

#: Widest ap_int/ap_uint the generated design may use. Xilinx's headers default
#: to 1024 bits; Vitis HLS allows raising AP_INT_MAX_W up to 4096 (UG1399,
#: "Arbitrary Precision Integer Types"), so that is the engine's limit.
MAX_WORD_BITS = 4096
#: ap_int's own default limit; above it the header defines AP_INT_MAX_W.
_AP_DEFAULT_MAX_W = 1024


class HlsWidthError(FoldingError):
    """A folding whose stream or weight words are wider than the HLS engine supports."""


def word_widths(layer: art.LayerSpec) -> list[tuple[str, str, int]]:
    """(description, folding knob that sets it, bits) of each word the HLS engine instantiates.

    The stream words, and one PE's weight word (SIMD codes of ``weight_bits``,
    an ``ap_uint`` of the weight memory): with wide weights and narrow inputs
    it is the widest of the three. A convolution's units add no wider word:
    the sliding window moves input words, the max-pool output words.
    """
    return [
        (f"SIMD={layer.simd} x {layer.input_bits} input bit(s) = input word", "SIMD", layer.in_stream_bits),
        (f"PE={layer.pe} x {layer.output_bits} output bit(s) = output word", "PE", layer.out_stream_bits),
        (f"SIMD={layer.simd} x {layer.weight_bits} weight bit(s) = weight word", "SIMD", layer.weight_word_bits),
    ]


def widest_word(layers: list[art.LayerSpec]) -> int:
    """The widest ap_uint of the generated design.

    Besides the stream words, the top's adapters hold a word as whole beats
    (``beats_per_word * beat_bits``, docs/ACCEL.md): a 3136-bit word sits in
    a 4096-bit register of four 1024-bit beats. The load path never holds a
    whole memory word (bnn_load.hpp), only beats and fields.
    """
    first, last = layers[0], layers[-1]
    adapters = [accel.Stream(first.in_stream_bits, first.in_stream_words),
                accel.Stream(last.out_stream_bits, last.out_stream_words)]
    return max([bits for layer in layers for _, _, bits in word_widths(layer)]
               + [s.beats_per_word * s.beat_bits for s in adapters])


def check_widths(layers: list[art.LayerSpec]) -> None:
    """Raise :class:`HlsWidthError` naming the layer and word when a width exceeds :data:`MAX_WORD_BITS`."""
    for layer in layers:
        for what, knob, bits in word_widths(layer):
            if bits > MAX_WORD_BITS:
                raise HlsWidthError(
                    f"layer {layer.index} ({layer.in_features} -> {layer.out_features}): {what} of {bits} bits "
                    f"exceeds the HLS engine's limit of {MAX_WORD_BITS} bits (Vitis HLS's largest AP_INT_MAX_W); "
                    f"choose a smaller {knob} for this layer, or generate RTL only "
                    "(`bnnflow export --generate rtl`): the Verilog engine has no such limit")


def _weight_literal(word: int, bits: int) -> str:
    """A ``bits``-wide unsigned C++ literal of ``word``."""
    digits = max(1, -(-bits // 4))
    if bits <= 32:
        return f"0x{word:0{digits}x}u"
    if bits <= 64:
        return f"0x{word:0{digits}x}ull"
    # Wider than any C++ integer literal: ap_uint's string constructor. The
    # "0x" prefix is required, not decoration: without it ap_int reads a
    # leading "0b" (or "0d") of the hex digits as a base prefix and drops it,
    # whatever radix is passed ("0b12" becomes 0x12).
    return f'ap_uint<{bits}>("0x{word:0{digits}x}", 16)'


def _rows(literals: list[str], indent: str) -> str:
    lines = [", ".join(literals[i:i + _PER_LINE]) for i in range(0, len(literals), _PER_LINE)]
    return (",\n" + indent).join(lines)


def _array_2d(values: list[str], rows: int, cols: int, indent: str = "    ") -> str:
    """Braced initializer of a [rows][cols] array from row-major literals."""
    body = []
    for r in range(rows):
        row = values[r * cols:(r + 1) * cols]
        body.append("{ // [" + str(r) + "]\n" + indent + "  " + _rows(row, indent + "  ") + "\n" + indent + "}")
    return "{\n" + indent + (",\n" + indent).join(body) + "\n" + indent[:-2] + "}"


def _array_3d(values: list[str], rows: int, cols: int, inner: int, indent: str = "    ") -> str:
    """Braced initializer of a [rows][cols][inner] array from row-major literals."""
    groups = ["{" + ", ".join(values[g * inner:(g + 1) * inner]) + "}" for g in range(rows * cols)]
    return _array_2d(groups, rows, cols, indent)


#: The C++ enumerators of the layer parameters (bnn_mvtu.hpp), keyed by the LayerSpec's values.
_MAC = {"xnor": "bnn::MAC_XNOR", "int": "bnn::MAC_INT"}
_ENCODING = {art.SYM: "bnn::ENC_SYM", art.INT: "bnn::ENC_INT"}


def _activation(layer: art.LayerSpec) -> tuple[str, str, str | None]:
    """(C++ type, object name, memory member or None) of the layer's activation.

    Chosen from the layer's parameters: thresholds -> ``bnn::MultiThreshold``
    (N per neuron), a score with ``affine_bits`` -> ``bnn::AffineScore``, a
    plain score -> ``bnn::Score`` (no memory).
    """
    name = f"L{layer.index}"
    if layer.has_thresholds:
        return (f"bnn::MultiThreshold<{name}::PE, {name}::NF, {name}::N_THRESHOLDS, {name}::T_BITS>",
                f"{name}_thresholds", "m_thresholds")
    if layer.affine_bits:
        return (f"bnn::AffineScore<{name}::PE, {name}::NF, {name}::A_BITS, {name}::OUT_BITS>", f"{name}_affine",
                "m_affine")
    return f"bnn::Score<{name}::OUT_BITS>", f"{name}_score", None


def _arithmetic(layer: art.LayerSpec) -> str:
    """The ``bnn::Arithmetic`` instance ``bnn::mvtu`` uses for the layer."""
    name = f"L{layer.index}"
    return (f"bnn::Arithmetic<{name}::MAC, {name}::MW_PAD, {name}::MW, {name}::SIMD, {name}::IN_BITS, "
            f"{name}::W_BITS, {name}::W_ENC>")


def _layer_config(layer: art.LayerSpec) -> str:
    """The ``Lk`` struct of ``static constexpr`` values of one layer, and the checks of the engine's derivations."""
    name = f"L{layer.index}"
    cfg = [
        ("MW", layer.in_features, "real inputs"),
        ("MW_PAD", layer.in_features_padded, "inputs padded to a multiple of SIMD"),
        ("MH", layer.out_features, "neurons"),
        ("PE", layer.pe, "processing elements"),
        ("SIMD", layer.simd, "lanes per PE"),
        ("NF", layer.nf, "neuron folds, MH / PE"),
        ("SF", layer.sf, "synapse folds, MW_PAD / SIMD"),
        ("CYCLES", layer.cycles_per_vector, "cycles per vector, NF * SF"),
        ("IN_BITS", layer.input_bits, "bits per input element"),
        ("W_BITS", layer.weight_bits, f"bits per weight code ({layer.weight_encoding})"),
        ("ACC_BITS", layer.acc_bits,
         "popcount width" if layer.mac == "xnor" else "signed accumulator width"),
        ("N_THRESHOLDS", layer.n_thresholds, "thresholds per neuron (0: a score layer)"),
        ("T_BITS", layer.threshold_bits, "threshold width (0: no thresholds)"),
        ("A_BITS", layer.affine_bits, "width of a score's mul and add (0: no affine)"),
        ("OUT_BITS", layer.output_bits, "bits per output element"),
    ]
    width = max(len(n) for n, _, _ in cfg)
    conv = ""
    if layer.is_conv:
        c = layer.conv
        conv = (f", {c.kernel}x{c.kernel} convolution over {c.ifm_h}x{c.ifm_w}x{c.channels}"
                + (f", {c.pool}x{c.pool} max-pool" if c.pool else "") + f", {layer.pixels} vectors per image")
    lines = [f"/// Layer {layer.index}: {layer.kind}, {layer.in_features} -> {layer.out_features} "
             f"(PE={layer.pe}, SIMD={layer.simd}, {layer.cycles_per_vector} cycles per vector{conv})",
             f"struct {name} {{"]
    lines.append(f"  static constexpr bnn::Mac {'MAC'.ljust(width - 4)} = {_MAC[layer.mac]};  // multiply-accumulate")
    lines.append(f"  static constexpr bnn::WeightEncoding {'W_ENC'.ljust(width - 15)} = "
                 f"{_ENCODING[layer.weight_encoding]};  // weight code -> value")
    for key, value, doc in cfg:
        lines.append(f"  static constexpr unsigned {key.ljust(width)} = {value};  // {doc}")
    lines.append(f"  static constexpr bool {'OUT_SIGNED'.ljust(width - 2)} = {'true' if layer.output_signed else 'false'};"
                 "  // true: two's-complement scores; false: unsigned threshold codes")
    conv = _conv_config(layer)
    if conv:
        cwidth = max(len(n) for n, _, _ in conv)
        lines.append("  // convolution (docs/ARTIFACT.md, \"Convolutions\"): maps stream pixel by pixel, HWC")
        for key, value, doc in conv:
            lines.append(f"  static constexpr unsigned {key.ljust(cwidth)} = {value};  // {doc}")
        lines.append("  typedef bnn::WindowGeometry<IFM_H, IFM_W, CH, K, PAD, SIMD> Window;  // what the window derives")
    lines.append("};")
    act_type, _, _ = _activation(layer)
    lines.append(f"static_assert({_arithmetic(layer)}::ACC_BITS == {name}::ACC_BITS,")
    lines.append(f"              \"layer {layer.index}: the engine's accumulator bound must give the manifest's acc_bits\");")
    lines.append(f"static_assert({act_type}::OUT_BITS == {name}::OUT_BITS,")
    lines.append(f"              \"layer {layer.index}: the activation's output field must be the manifest's output_bits\");")
    if layer.is_conv:
        lines.append(f"static_assert({name}::Window::OFM_H == {name}::OFM_H && {name}::Window::OFM_W == {name}::OFM_W &&")
        lines.append(f"              {name}::OFM_H * {name}::OFM_W == {name}::PIXELS && "
                     f"{name}::Window::IN_WORDS == {name}::IN_WORDS &&")
        lines.append(f"              {name}::Window::OUT_WORDS == {name}::PIXELS * {name}::SF && "
                     f"{name}::MW == {name}::K * {name}::K * {name}::CH,")
        lines.append(f"              \"layer {layer.index}: the sliding window must give one MW-element vector per "
                     "output pixel\");")
        lines.append(f"static_assert({name}::POOL == 0 ? {name}::OUT_H == {name}::OFM_H && {name}::OUT_W == {name}::OFM_W")
        lines.append(f"                             : {name}::OUT_H == {name}::OFM_H / {name}::POOL && "
                     f"{name}::OUT_W == {name}::OFM_W / {name}::POOL,")
        lines.append(f"              \"layer {layer.index}: the output map is the max-pool's (or the convolution's)\");")
        lines.append(f"static_assert({name}::OUT_WORDS == {name}::OUT_H * {name}::OUT_W * {name}::NF,")
        lines.append(f"              \"layer {layer.index}: the output stream is the map, pixel by pixel, NF words each\");")
    return "\n".join(lines)


def _conv_config(layer: art.LayerSpec) -> list[tuple[str, int, str]]:
    """(name, value, comment) of a convolution's geometry in the ``Lk`` struct; [] for a fully connected layer.

    Every value comes from the layer's ConvSpec (bnnflow.artifact), the
    output map sizes from its geometry, the word counts from LayerSpec.
    """
    c = layer.conv
    if c is None:
        return []
    g = c.geometry
    out_h, out_w = c.out_dims
    return [
        ("IFM_H", c.ifm_h, "input map height"),
        ("IFM_W", c.ifm_w, "input map width"),
        ("CH", c.channels, "input channels; MW = K * K * CH"),
        ("K", c.kernel, "K x K window, stride 1"),
        ("PAD", c.pad, "padding on every side"),
        ("PAD_CODE", c.pad_code, "input code of a padding element"),
        ("PIXELS", layer.pixels, f"output pixels ({g.ofm_h}x{g.ofm_w}): vectors per image"),
        ("POOL", c.pool, "POOL x POOL max-pool, stride POOL (0: none)"),
        ("OFM_H", g.ofm_h, "output map height before the pool"),
        ("OFM_W", g.ofm_w, "output map width before the pool"),
        ("OUT_H", out_h, "output map height after the pool"),
        ("OUT_W", out_w, "output map width after the pool"),
        ("IN_WORDS", layer.in_stream_words, "input words per image: IFM_H * IFM_W * CH / SIMD"),
        ("OUT_WORDS", layer.out_stream_words, "output words per image: OUT_H * OUT_W * NF"),
    ]


def _layer_memories(artifact: art.Artifact, k: int) -> str:
    """Layer ``k``'s weight and neuron-parameter memories: writable arrays initialised with the exported values."""
    layer = artifact.layers[k]
    name = f"L{k}"
    lanes = artifact.weight_lanes(k)                      # (PE, NF*SF, SIMD) codes
    words = packing.words_to_int(lanes, layer.weight_bits)  # PE * depth ints, row-major, lane j at bits j*K
    literals = [_weight_literal(w, layer.weight_word_bits) for w in words]
    lines = [f"/// Layer {k} weights[p][nf*SF + sf]: neuron nf*PE + p; synapse sf*SIMD + j's "
             f"{layer.weight_bits}-bit code at bits [j*W_BITS, (j+1)*W_BITS).",
             f"ap_uint<{name}::SIMD * {name}::W_BITS> {name}_weights[{name}::PE][{name}::NF * {name}::SF]"
             + _power_on(_array_2d(literals, layer.pe, layer.weight_depth))]
    act_type, act_name, member = _activation(layer)
    if member is None:
        lines.append(f"/// Layer {k}: the score itself (no neuron parameters).")
        lines.append(f"const {act_type} {act_name} = {{}};")
        return "\n".join(lines)
    if member == "m_thresholds":
        folded = artifact.folded_thresholds(k)            # (PE, NF, N)
        doc = "m_thresholds[p][nf][t]: threshold t of neuron nf*PE + p; output = #{t : acc >= threshold t}."
    else:
        folded = artifact.folded_affine(k)                # (PE, NF, 2)
        doc = "m_affine[p][nf]: {mul, add} of neuron nf*PE + p; score = mul * dot + add."
    pe, nf, n = folded.shape
    values = [str(int(v)) for v in folded.reshape(-1).tolist()]
    lines.append(f"/// Layer {k} {doc}")
    lines.append(f"{act_type} {act_name}" + _power_on("{" + _array_3d(values, pe, nf, n, "      ") + "}"))
    return "\n".join(lines)


def _power_on(initializer: str) -> str:
    """`` = initializer;`` unless BNNFLOW_PARAMS_FROM_STREAM: then the memory starts at zero and is loaded.

    g++ takes minutes, superlinearly, on initializers of 10^5 ap_int values
    (two 256-neuron layers of 255 thresholds: over 10 minutes, even at -O0),
    so the C simulation of such a net leaves them out and streams the
    parameters in through load mode first (bnnflow.hlsflow.PARAMS_FROM_STREAM_ABOVE).
    """
    return "\n#ifndef BNNFLOW_PARAMS_FROM_STREAM\n    = " + initializer + "\n#endif\n    ;"


def _partition_pragmas(layers: list[art.LayerSpec]) -> list[str]:
    """One memory per PE (first dimension); a neuron's thresholds or (mul, add) side by side (third)."""
    pragmas = []
    for layer in layers:
        pragmas.append(f"#pragma HLS ARRAY_PARTITION variable=L{layer.index}_weights complete dim=1")
        _, act_name, member = _activation(layer)
        if member is not None:
            pragmas.append(f"#pragma HLS ARRAY_PARTITION variable={act_name}.{member} complete dim=1")
            pragmas.append(f"#pragma HLS ARRAY_PARTITION variable={act_name}.{member} complete dim=3")
    return pragmas


def _engine_call(layer: art.LayerSpec, name: str, src: str, dst: str, vectors: str = "reps") -> str:
    """The layer's ``bnn::mvtu`` instance: every template argument from the ``Lk`` struct.

    ``vectors`` is the C++ expression of the vectors it runs: ``reps`` (one
    per image), ``reps * Lk::PIXELS`` for a convolution.
    """
    _, act_name, _ = _activation(layer)
    return (f"  bnn::mvtu<{name}::MW_PAD, {name}::MW, {name}::MH, {name}::PE, {name}::SIMD, {name}::IN_BITS, "
            f"{name}::W_BITS, {name}::W_ENC, {name}::MAC>(\n      {src}, {dst}, {name}_weights, {act_name}, "
            f"{vectors});")


def _window_call(name: str, src: str, dst: str) -> str:
    """A convolution's ``bnn::sliding_window``: the input map -> one im2col vector (SF words) per output pixel."""
    return (f"  bnn::sliding_window<{name}::IFM_H, {name}::IFM_W, {name}::CH, {name}::K, {name}::PAD, {name}::SIMD, "
            f"{name}::IN_BITS, {name}::PAD_CODE>({src}, {dst}, reps);")


def _pool_call(name: str, src: str, dst: str) -> str:
    """A pooling convolution's ``bnn::max_pool`` over its OFM_H x OFM_W x MH output codes."""
    return (f"  bnn::max_pool<{name}::OFM_H, {name}::OFM_W, {name}::MH, {name}::POOL, {name}::PE, {name}::OUT_BITS>"
            f"({src}, {dst}, reps);")


def _processes(layers: list[art.LayerSpec]) -> int:
    """Concurrent processes of infer(): two adapters, the layers' engines and units, the repackers."""
    units = sum(1 + (1 if layer.is_conv else 0) + (1 if layer.is_conv and layer.conv.pool else 0)
                for layer in layers)
    return 2 + units + sum(1 for a, b in zip(layers, layers[1:]) if _needs_repack(a, b))


def _infer_function(artifact: art.Artifact) -> str:
    """``infer()``: the DATAFLOW region of infer mode, one process per adapter, layer and repacker."""
    layers = artifact.layers
    decls: list[str] = []
    calls: list[str] = []

    def stream(var: str, bits: int, depth: int | None = None) -> None:
        decls.append(f"  hls::stream<ap_uint<{bits}> > {var}(\"{var}\");")
        if depth is not None:
            decls.append(f"#pragma HLS STREAM variable={var} depth={depth}")

    # Processes: adapter in, layers (with their windows and pools), repackers, adapter out. The TLAST
    # flags bypass them all, so their FIFO holds as many images as can be in flight.
    stream("s_last", 1, depth=4 * _processes(layers))
    stream("s_in", layers[0].in_stream_bits)
    calls.append("  bnn::beats_to_words<kInBeatBits, kInWordBits, kInWords>(in, s_in, s_last, format_error, reps);")
    src = "s_in"
    for k, layer in enumerate(layers):
        name = f"L{k}"
        vectors = "reps"
        if layer.is_conv:
            window = f"s_l{k}_win"
            stream(window, layer.in_stream_bits)
            calls.append(_window_call(name, src, window))
            src, vectors = window, f"reps * {name}::PIXELS"
        dst = f"s_l{k}"
        if layer.is_conv and layer.conv.pool:
            unpooled = f"s_l{k}_mv"
            stream(unpooled, layer.out_stream_bits)
            calls.append(_engine_call(layer, name, src, unpooled, vectors))
            stream(dst, layer.out_stream_bits)
            calls.append(_pool_call(name, unpooled, dst))
        else:
            stream(dst, layer.out_stream_bits)
            calls.append(_engine_call(layer, name, src, dst, vectors))
        words = f"{name}::OUT_WORDS" if layer.is_conv else f"{name}::NF"
        calls += ["#ifdef BNNFLOW_LAYER_TAPS  // C simulation only: the testbench compares every layer's words",
                  f"  bnn::tap<{layer.out_stream_bits}, {k}>({dst}, reps * {words});",
                  "#endif"]
        src = dst
        if k + 1 < len(layers):
            nxt = layers[k + 1]
            if _needs_repack(layer, nxt):
                dst = f"s_l{k + 1}_in"
                stream(dst, nxt.in_stream_bits)
                calls.append(_repack_call(layer, nxt, src, dst))
                src = dst
    calls.append(f"  bnn::words_to_beats<kOutBeatBits, kOutWordBits, kOutWords>({src}, s_last, out, reps);")
    return "\n".join([
        "/**",
        " * \\brief Infer mode: beats -> words -> layers (repackers between them) -> words -> beats,",
        " *        one DATAFLOW region; each call is one concurrent process. A convolution is",
        " *        sliding window -> mvtu (one vector per output pixel) [-> max-pool].",
        " *",
        " * The memory partitioning is stated here, once: it is a property of the arrays, so",
        " * load_parameters() writes the same per-PE memories the engines read.",
        " * \\param in           input beats, kInWords * kInBeatsPerWord per image",
        " * \\param out          score beats, kOutWords * kOutBeatsPerWord per image",
        " * \\param reps         number of images (at least 1)",
        " * \\param format_error 1 when an input beat had a TKEEP bit clear or a padding bit set",
        " */",
        "void infer(hls::stream<InBeat> &in, hls::stream<OutBeat> &out, unsigned reps, ap_uint<1> &format_error) {",
        "#pragma HLS INLINE off",
        "#pragma HLS DATAFLOW",
        *_partition_pragmas(layers),
        *decls,
        *calls,
        "}",
    ])


@dataclass(frozen=True)
class _Load:
    """One parameter-stream segment as the generated load path reads it."""

    segment: accel.ParamSegment
    call: str          # the load function with its template arguments
    array: str         # the C++ memory it writes
    depth: str         # C++ expression of the memory's depth
    word_bits: str     # C++ expression of the memory word's width (PE x group x field)


def _segment_load(artifact: art.Artifact, segment: accel.ParamSegment) -> tuple[_Load, int]:
    """The load of one segment, and its word width in bits as this header's memory has it."""
    layer = artifact.layers[segment.layer]
    name = f"L{segment.layer}"
    if segment.memory == "weights":
        field, depth = f"{name}::SIMD * {name}::W_BITS", f"{name}::NF * {name}::SF"
        return (_Load(segment, f"bnn::load_memory<kInBeatBits, {name}::PE, {field}, {depth}>", f"{name}_weights",
                      depth, f"{name}::PE * {field}"), layer.pe * layer.weight_word_bits)
    _, act_name, member = _activation(layer)
    if segment.memory == "thresholds" and member == "m_thresholds":
        group, field, bits = f"{name}::N_THRESHOLDS", f"{name}::T_BITS", layer.n_thresholds * layer.threshold_bits
    elif segment.memory == "affine" and member == "m_affine":
        group, field, bits = "2", f"{name}::A_BITS", 2 * layer.affine_bits
    else:
        raise art.ArtifactError(f"layer {segment.layer} ({layer.kind}): no HLS memory for parameter segment "
                                f"{segment.memory!r}")
    return (_Load(segment, f"bnn::load_grouped_memory<kInBeatBits, {name}::PE, {group}, {field}, {name}::NF>",
                  f"{act_name}.{member}", f"{name}::NF", f"{name}::PE * {group} * {field}"), layer.pe * bits)


def _loads(artifact: art.Artifact) -> list[_Load]:
    """The loads of every parameter-stream segment, in stream order (``accel.param_segments``).

    Raises ArtifactError when a segment's word is not the memory word the
    engine holds (the stream layout and the memories would disagree).
    """
    loads = []
    for segment in accel.param_segments(artifact):
        load, word_bits = _segment_load(artifact, segment)
        if word_bits != segment.word_bits:
            raise art.ArtifactError(f"layer {segment.layer}: the {segment.memory} segment of the parameter stream "
                                    f"has {segment.word_bits}-bit words, the HLS memory {word_bits}-bit ones")
        loads.append(load)
    return loads


def _load_function(artifact: art.Artifact) -> str:
    """``load_parameters()``: the parameter stream's segments, in bnnflow.accel's order, into the memories."""
    loads = _loads(artifact)
    calls = []
    for i, load in enumerate(loads):
        last = "true" if i + 1 == len(loads) else "false"
        calls.append(f"  {load.call}(in, {load.array}, {last}, fe, le);  "
                     f"// {load.segment.words} x {load.segment.beats_per_word} beat(s)")
    return "\n".join([
        "/**",
        " * \\brief Load mode: read the parameter stream (kParamBeats beats, docs/ACCEL.md) into the",
        " *        weight and neuron-parameter memories, memory after memory in bnnflow.accel.param_segments",
        " *        order.",
        " * \\param in           the parameter stream",
        " * \\param format_error 1 when a beat had a TKEEP bit clear or a padding bit set",
        " * \\param length_error 1 when TLAST was not exactly on the last of the kParamBeats beats",
        " */",
        "void load_parameters(hls::stream<InBeat> &in, ap_uint<1> &format_error, ap_uint<1> &length_error) {",
        "#pragma HLS INLINE off",
        "  ap_uint<1> fe = 0, le = 0;",
        *calls,
        "  format_error = fe;",
        "  length_error = le;",
        "}",
    ])


def _param_beats_check(artifact: art.Artifact) -> list[str]:
    """A static_assert that the generated load path consumes exactly accel.param_beats beats."""
    terms = [f"bnn::beats_for({load.word_bits}, kInBeatBits) * {load.depth}" for load in _loads(artifact)]
    return ["static_assert(" + " +\n                  ".join(terms) + " == kParamBeats,",
            "              \"the load path's segments must add up to the parameter stream of bnnflow.accel\");"]


def _repack_shape(a: art.LayerSpec, b: art.LayerSpec) -> tuple[int, int]:
    """(elements read, elements written) per vector of the repacker from layer ``a`` to layer ``b``.

    A convolution reads its input map pixel by pixel (one vector = one
    pixel's channels, no padding: SIMD divides them; IFM_H * IFM_W vectors
    per image); a fully connected layer reads the producer's whole output (a
    conv's pooled map, HWC) as one vector, zero-padded to its MW_pad.
    """
    if b.is_conv:
        return b.conv.channels, b.conv.channels
    return a.out_elements, b.in_features_padded


def _needs_repack(a: art.LayerSpec, b: art.LayerSpec) -> bool:
    """A repacker is needed unless the words and the padding already agree."""
    elems_in, elems_out = _repack_shape(a, b)
    return not (a.pe == b.simd and elems_in == elems_out)


def _repack_call(a: art.LayerSpec, b: art.LayerSpec, src: str, dst: str) -> str:
    """The ``bnn::repack`` between layers ``a`` and ``b`` (see :func:`_repack_shape`)."""
    ka, kb = f"L{a.index}", f"L{b.index}"
    if b.is_conv:
        return (f"  bnn::repack<{ka}::PE, {kb}::CH, {kb}::SIMD, {kb}::CH, {ka}::OUT_BITS>"
                f"({src}, {dst}, reps * {kb}::IFM_H * {kb}::IFM_W);  // one vector per pixel")
    if a.is_conv:
        return (f"  bnn::repack<{ka}::PE, {ka}::OUT_WORDS * {ka}::PE, {kb}::SIMD, {kb}::MW_PAD, {ka}::OUT_BITS>"
                f"({src}, {dst}, reps);  // the whole map as one vector")
    return f"  bnn::repack<{ka}::PE, {ka}::MH, {kb}::SIMD, {kb}::MW_PAD, {ka}::OUT_BITS>({src}, {dst}, reps);"


def render_header(artifact: art.Artifact) -> str:
    """The text of ``bnnflow_params.h`` for ``artifact``."""
    layers = artifact.layers
    check_widths(layers)
    first, last = layers[0], layers[-1]
    instream, outstream = accel.input_stream(artifact), accel.output_stream(artifact)
    name = str(artifact.network.get("name", "bnnflow"))
    widest = widest_word(layers)
    c_name = name.replace("\\", "\\\\").replace('"', '\\"')
    top = [
        f"// bnnflow_params.h -- generated by bnnflow.hlsgen for network \"{c_name}\".",
        "// Do not edit: re-run `bnnflow export`. Bit layout: docs/ARTIFACT.md; interface: docs/ACCEL.md;",
        "// engines: hls/*.hpp; how to build and simulate: docs/HLS.md.",
        "//",
        "// Guards: BNNFLOW_INTERFACE_ONLY keeps the constants and types (the testbench);",
        "// BNNFLOW_DATA_ONLY also keeps the memories, without infer()/load_parameters().",
        "#ifndef BNNFLOW_PARAMS_H",
        "#define BNNFLOW_PARAMS_H",
        "",
        *_max_width_lines(widest),
        "#include <ap_int.h>",
        "#include <hls_stream.h>",
        "",
        "#include \"bnn_axis.hpp\"",
        "#include \"bnn_conv.hpp\"",
        "#include \"bnn_load.hpp\"",
        "#include \"bnn_mvtu.hpp\"",
        "#include \"bnn_streams.hpp\"",
        "",
        "namespace bnnflow {",
        "",
        f"constexpr unsigned kWidestWordBits = {widest};  // widest ap_uint of this design",
        "static_assert(AP_INT_MAX_W >= kWidestWordBits,",
        "              \"ap_int.h was included before bnnflow_params.h with a smaller AP_INT_MAX_W: include this \"",
        "              \"header first or define AP_INT_MAX_W (at most 4096 in Vitis HLS) on the command line\");",
        "",
        "// -- network (manifest \"network\") --",
        f"constexpr const char *kNetworkName = \"{c_name}\";",
        f"constexpr unsigned kInputFeatures = {artifact.input_features};  // elements per image",
        f"constexpr unsigned kInputBits = {artifact.input_bits};  // bits per unsigned image element",
        f"constexpr unsigned kNumClasses = {artifact.num_classes};",
        f"constexpr unsigned kNumLayers = {len(layers)};",
        "",
        "// -- engine words at the top (docs/ARTIFACT.md, \"Streams\") --",
        f"constexpr unsigned kInSimd = {first.simd};  // image elements per input word",
        f"constexpr unsigned kInWords = {first.in_stream_words};  // input words per image"
        + (" (the input map, pixel by pixel)" if first.is_conv else ""),
        f"constexpr unsigned kInWordBits = {first.in_stream_bits};  // kInSimd * kInputBits",
        f"constexpr unsigned kOutPe = {last.pe};  // scores per output word",
        f"constexpr unsigned kOutWords = {last.out_stream_words};  // output words per image",
        f"constexpr unsigned kOutBits = {last.output_bits};  // bits per score",
        f"constexpr bool kOutSigned = {'true' if last.output_signed else 'false'};  // two's complement scores",
        f"constexpr unsigned kOutWordBits = {last.out_stream_bits};  // kOutPe * kOutBits",
        "",
        "// -- the accelerator interface (bnnflow.accel, docs/ACCEL.md) --",
        f"constexpr unsigned kInterfaceVersion = {accel.INTERFACE_VERSION};",
        f"constexpr unsigned kSignature = 0x{accel.signature(artifact):08x}u;  // the hardware signature",
        f"constexpr unsigned kInBeatBits = {instream.beat_bits};  // TDATA of the input stream",
        f"constexpr unsigned kInBeatsPerWord = {instream.beats_per_word};  // beats of one input word",
        f"constexpr unsigned kOutBeatBits = {outstream.beat_bits};  // TDATA of the output stream",
        f"constexpr unsigned kOutBeatsPerWord = {outstream.beats_per_word};  // beats of one output word",
        f"constexpr unsigned kParamBeats = {accel.param_beats(artifact)};  // beats of the parameter stream (load mode)",
        f"constexpr unsigned kModeInfer = {accel.MODE_INFER};",
        f"constexpr unsigned kModeLoad = {accel.MODE_LOAD};",
        f"constexpr unsigned kStatusFormatError = {accel.STATUS_FORMAT_ERROR};  // TKEEP bit clear or padding bit set",
        f"constexpr unsigned kStatusLoadLengthError = {accel.STATUS_LOAD_LENGTH_ERROR};  // TLAST not on the last "
        "parameter beat",
        f"constexpr unsigned kStatusBadMode = {accel.STATUS_BAD_MODE};  // unknown mode, nothing done",
        "static_assert(kInBeatsPerWord == bnn::beats_for(kInWordBits, kInBeatBits), \"input beats per word\");",
        "static_assert(kOutBeatsPerWord == bnn::beats_for(kOutWordBits, kOutBeatBits), \"output beats per word\");",
        "typedef bnn::AxisWord<kInBeatBits> InBeat;",
        "typedef bnn::AxisWord<kOutBeatBits> OutBeat;",
        "",
        "// -- layers --",
        "\n\n".join(_layer_config(layer) for layer in layers),
        "",
        *_param_beats_check(artifact),
        "",
        "// Everything below holds or uses the memories: one translation unit (the top) includes it.",
        "#ifndef BNNFLOW_INTERFACE_ONLY",
        "",
        "// -- memories: writable (load mode replaces them); the initializers are the power-on parameters --",
        "// (BNNFLOW_PARAMS_FROM_STREAM leaves the initializers out: the memories start at zero until a load)",
        "\n\n".join(_layer_memories(artifact, k) for k in range(len(layers))),
        "",
        "// BNNFLOW_DATA_ONLY leaves out the functions (and so every engine instantiation):",
        "// tools that only read the memories (hlsflow.read_back_weights) compile in seconds.",
        "#ifndef BNNFLOW_DATA_ONLY",
        "",
        _infer_function(artifact),
        "",
        _load_function(artifact),
        "",
        "#endif  // BNNFLOW_DATA_ONLY",
        "#endif  // BNNFLOW_INTERFACE_ONLY",
        "",
        "}  // namespace bnnflow",
        "",
        "#endif  // BNNFLOW_PARAMS_H",
        "",
    ]
    return "\n".join(top)


def _max_width_lines(widest: int) -> list[str]:
    """Raise ap_int's width limit before its first include when a word is wider than its default."""
    if widest <= _AP_DEFAULT_MAX_W:
        return []
    limit = -(-widest // 1024) * 1024
    return [f"// The widest word is {widest} bits; ap_int allows {_AP_DEFAULT_MAX_W} unless told otherwise.",
            "#ifndef AP_INT_MAX_W",
            f"#define AP_INT_MAX_W {limit}",
            "#endif"]


def write_hls(artifact: art.Artifact, out_dir: Path) -> dict[str, Any]:
    """Write ``out_dir/hls/bnnflow_params.h``; return the manifest's ``hls`` section.

    String values of the section are paths relative to ``out_dir`` (the
    writer checksums them); the integers describe the top-level streams.
    """
    out_dir = Path(out_dir)
    path = out_dir / HEADER
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_header(artifact))
    first, last = artifact.layers[0], artifact.layers[-1]
    return {
        "header": HEADER,
        "in_word_bits": first.in_stream_bits,
        "out_word_bits": last.out_stream_bits,
    }
