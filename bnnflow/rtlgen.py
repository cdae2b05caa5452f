"""Generate the RTL view of an artifact: memory-init files and the network top.

``write_rtl`` writes into ``<export>/rtl/``:

- ``L{k}_weights.mem`` / ``L{k}_thresholds.mem``: ``$readmemh`` files in the
  layout of docs/ARTIFACT.md ("RTL memory files"), built from the artifact's
  decoded view (``weight_lanes`` / ``folded_thresholds``) with
  :func:`bnnflow.packing.words_to_int`, so the bit layout lives in one place.
- ``bnnflow_top.v``: module ``bnnflow_top``, the layers' ``bnn_mvtu`` units
  chained through ``bnn_axis_repack`` converters. Its s_axis takes layer 0's
  input words, its m_axis gives the last layer's output (score) words.
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
from pathlib import Path
from typing import Any

import numpy as np

from . import artifact as art
from . import packing

#: The RTL library every generated design uses (dependency order).
LIBRARY = ("bnn_simd_dot.v", "bnn_threshold.v", "bnn_mvtu.v", "bnn_axis_repack.v")
TOP_MODULE = "bnnflow_top"
TOP_FILE = "bnnflow_top.v"


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


def _hex_lines(words: list[int], width: int) -> str:
    digits = max(1, -(-width // 4))
    return "".join(f"{w:0{digits}x}\n" for w in words)


def weight_mem_text(artifact: art.Artifact, k: int) -> str:
    """``$readmemh`` text of layer ``k``'s weights: NF*SF words of PE*SIMD bits."""
    layer = artifact.layers[k]
    lanes = artifact.weight_lanes(k)                          # (PE, depth, SIMD)
    # word at address a = all PEs side by side: bit p*SIMD + j is lanes[p, a, j]
    fields = np.ascontiguousarray(lanes.transpose(1, 0, 2)).reshape(layer.weight_depth, layer.pe * layer.simd)
    return _hex_lines(packing.words_to_int(fields, 1), layer.pe * layer.simd)


def threshold_mem_text(artifact: art.Artifact, k: int) -> str | None:
    """``$readmemh`` text of layer ``k``'s thresholds (None for a score layer)."""
    layer = artifact.layers[k]
    folded = artifact.folded_thresholds(k)                    # (PE, NF)
    if folded is None:
        return None
    words = packing.words_to_int(np.ascontiguousarray(folded.T), layer.threshold_bits)
    return _hex_lines(words, layer.pe * layer.threshold_bits)


def mvtu_parameters(layer: art.LayerSpec, weight_path: str | None = None,
                    threshold_path: str | None = None) -> dict[str, Any]:
    """``bnn_mvtu`` parameters of one layer (strings are the memory file names)."""
    params: dict[str, Any] = {
        "MW": layer.in_features_padded,
        "MH": layer.out_features,
        "PE": layer.pe,
        "SIMD": layer.simd,
        "INPUT_BITS": layer.input_bits,
        "XNOR": 0 if layer.kind == art.INT_THRESHOLD else 1,
        "THRESHOLD": 0 if layer.kind == art.XNOR_SCORE else 1,
        "ACC_BITS": layer.acc_bits,
        "THRESHOLD_BITS": layer.threshold_bits,
        "OUTPUT_BITS": layer.output_bits,
        "REAL_MW": layer.in_features,
    }
    if weight_path is not None:
        params["WEIGHT_FILE"] = weight_path
    if threshold_path is not None and layer.kind != art.XNOR_SCORE:
        params["THRESHOLD_FILE"] = threshold_path
    return params


def repack_parameters(prev: art.LayerSpec, nxt: art.LayerSpec) -> dict[str, int]:
    """``bnn_axis_repack`` parameters between layer ``prev`` and layer ``nxt``."""
    return {
        "IN_ELEMS": prev.pe,
        "OUT_ELEMS": nxt.simd,
        "ELEM_BITS": prev.output_bits,
        "ELEMS": prev.out_features,
        "ELEMS_PAD": nxt.in_features_padded,
    }


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


def top_text(artifact: art.Artifact) -> str:
    """Verilog-2005 text of ``bnnflow_top`` for the artifact's layers."""
    layers = artifact.layers
    first, last = layers[0], layers[-1]
    in_w, out_w = first.in_stream_bits, last.out_stream_bits
    n = len(layers)

    head = [
        f"// {TOP_MODULE}: generated by bnnflow.rtlgen from an artifact manifest; do not edit.",
        "//",
        f"// {n} layer(s), each a bnn_mvtu; consecutive layers are joined by bnn_axis_repack.",
    ]
    for l in layers:
        head.append(f"//   L{l.index}: {l.kind:<14} MW={l.in_features} (padded {l.in_features_padded}) MH={l.out_features} "
                    f"PE={l.pe} SIMD={l.simd} NF={l.nf} SF={l.sf} -> {l.nf * l.sf} cycles/vector")
    head += [
        "//",
        f"// s_axis: layer 0's input stream, {in_w} bits = {first.simd} elements of {first.input_bits} bit(s)",
        f"//         (element j at bits [j*{first.input_bits} +: {first.input_bits}]), {first.sf} words per image;",
        f"//         the host pads each image with zeros from {first.in_features} to {first.in_features_padded} elements.",
        f"// m_axis: the last layer's output, {out_w} bits = {last.pe} elements of {last.output_bits} bit(s)"
        f"{' (two' + chr(39) + 's complement)' if last.output_signed else ''},",
        f"//         {last.nf} words per image; element p of word k is output k*{last.pe} + p.",
        "// TLAST: the last output word of an image carries TLAST exactly when the last",
        "//        input word of that image did (docs/ARTIFACT.md \"Streams\").",
        f"// Throughput: one image per {max(l.nf * l.sf for l in layers)} cycles (slowest layer) without backpressure.",
        "// Reset: rst is synchronous and active-high.",
        "// Memory files: the L*_FILE parameters name the $readmemh files (default: bare",
        "// file names, resolved against the simulator's working directory).",
        "",
    ]

    params = []
    for l in layers:
        params.append((f"L{l.index}_WEIGHT_FILE", weight_file(l.index)))
        if l.kind != art.XNOR_SCORE:
            params.append((f"L{l.index}_THRESHOLD_FILE", threshold_file(l.index)))
    pw = max(len(k) for k, _ in params)
    body = [f"module {TOP_MODULE} #("]
    body += [f"    parameter {k:<{pw}} = {_verilog_value(v)}{',' if i < len(params) - 1 else ''}"
             for i, (k, v) in enumerate(params)]
    rng_in, rng_out = f"[{in_w - 1}:0]", f"[{out_w - 1}:0]"
    rw = max(len(rng_in), len(rng_out))

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
        port("output", "", "m_axis_tlast", last=True),
        ");",
        "",
    ]

    # stream names: x{k} is layer k's input, y{k} its output
    def decl(name: str, width: int) -> list[str]:
        return [f"    wire [{width - 1}:0] {name}_tdata;",
                f"    wire {name}_tvalid, {name}_tready, {name}_tlast;"]

    for l in layers:
        if l.index > 0:
            body += decl(f"x{l.index}", l.in_stream_bits)
        if l.index < n - 1:
            body += decl(f"y{l.index}", l.out_stream_bits)
    body.append("")
    for sig in ("tdata", "tvalid", "tlast"):
        body.append(f"    wire {'[' + str(in_w - 1) + ':0] ' if sig == 'tdata' else ''}x0_{sig} = s_axis_{sig};")
    body.append("    wire x0_tready;")
    body.append("    assign s_axis_tready = x0_tready;")
    body.append("")

    for l in layers:
        k = l.index
        out_name = f"y{k}" if k < n - 1 else "m_axis"
        params_k = mvtu_parameters(l)
        params_k = {key: str(v) for key, v in params_k.items()}
        params_k["WEIGHT_FILE"] = f"L{k}_WEIGHT_FILE"
        if l.kind != art.XNOR_SCORE:
            params_k["THRESHOLD_FILE"] = f"L{k}_THRESHOLD_FILE"
        body.append(f"    // layer {k}: {l.kind}, {l.in_features} -> {l.out_features}")
        ports = _stream_ports("", f"x{k}", out_name)
        body.append(_instance("bnn_mvtu", f"u_layer{k}", params_k, ports))
        body.append("")
        if k < n - 1:
            nxt = layers[k + 1]
            rp = {key: str(v) for key, v in repack_parameters(l, nxt).items()}
            body.append(f"    // layer {k} -> {k + 1}: {l.pe} x {l.output_bits}-bit words -> "
                        f"{nxt.simd} x {nxt.input_bits}-bit words, pad {l.out_features} -> {nxt.in_features_padded}")
            body.append(_instance("bnn_axis_repack", f"u_repack{k}", rp, _stream_ports("", f"y{k}", f"x{k + 1}")))
            body.append("")
    body.append("endmodule")
    return "\n".join(head + body) + "\n"


def write_rtl(artifact: art.Artifact, out_dir: Path) -> dict[str, Any]:
    """Write memory files, the generated top and the RTL library into ``out_dir/rtl/``.

    Returns the manifest's ``rtl`` section; every string / list-of-strings value
    is a path relative to ``out_dir`` (the writer checksums them).
    """
    out_dir = Path(out_dir)
    rtl = out_dir / "rtl"
    rtl.mkdir(parents=True, exist_ok=True)
    memories = []
    for k in range(len(artifact.layers)):
        (rtl / weight_file(k)).write_text(weight_mem_text(artifact, k))
        memories.append(f"rtl/{weight_file(k)}")
        text = threshold_mem_text(artifact, k)
        if text is not None:
            (rtl / threshold_file(k)).write_text(text)
            memories.append(f"rtl/{threshold_file(k)}")
    sources = []
    for src in library_sources():
        shutil.copyfile(src, rtl / src.name)
        sources.append(f"rtl/{src.name}")
    (rtl / TOP_FILE).write_text(top_text(artifact))
    return {
        "top": f"rtl/{TOP_FILE}",
        "top_module": TOP_MODULE,
        "sources": sources + [f"rtl/{TOP_FILE}"],
        "memories": memories,
        "cycles_per_image": max(l.nf * l.sf for l in artifact.layers),
    }
