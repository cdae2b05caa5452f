"""``bnnflow qonnx``: an export's deployed integer network as a QONNX graph, checked by qonnx's executor.

Why: QONNX is the interchange format of FINN and Brevitas. A bnnflow export is
an integer network (docs/ARTIFACT.md); written as QONNX, other tools can read,
execute, transform or compile exactly what the bnnflow engines compute, and
qonnx's own executor (``execute_onnx``) gives an independent check of the
golden model's arithmetic.

The source is the artifact (read with :mod:`bnnflow.artifact`), never the torch
model: the graph computes what :mod:`bnnflow.golden` computes, layer by layer
(docs/INTEROP.md has the mapping table):

* ``int_*`` layer: ``MatMul`` of the unsigned input codes with the weight
  values (``Artifact.weight_values``: sym or narrow int, decoded once there),
  annotated BIPOLAR (1-bit sym), INT(K+1) (K-bit sym: odd levels up to
  2^K - 1) or INTK (K-bit int).
* ``xnor_*`` layer: the same ``MatMul`` on **bipolar** values (the input bit
  b is ``2b - 1``, the weight bit likewise). For one neuron over the real MW
  lanes, ``XNOR(b, w) = (1 + (2b-1)(2w-1)) / 2``, so the artifact's
  accumulator ``acc = popcount(XNOR)`` and the bipolar dot satisfy
  ``dot = 2*acc - MW`` (padded lanes add nothing to ``acc``: input bit 0
  against weight bit 1, docs/ARTIFACT.md "Padding"; the graph has no padded
  lanes at all). Hence ``acc >= T  <=>  dot >= 2T - MW``: the thresholds are
  moved to ``2T - MW``, an exact integer map that keeps the order.
* Threshold output: qonnx's ``MultiThreshold`` (``out = #{t : x >= T[t]}``,
  the artifact's rule), thresholds ``(MH, N)``, ``out_dtype`` UINT(bits of N)
  -- or, when the next layer is an ``xnor_*`` one (N = 1), BIPOLAR with
  ``out_scale = 2, out_bias = -1``, so the next MatMul reads +-1 values.
  A network whose first layer is ``xnor_*`` (1-bit pixels) starts with the
  same bit -> +-1 ``MultiThreshold`` (threshold 1).
* Score layer: the dot, then ``Mul`` by ``mul`` and ``Add`` of ``add`` when the
  layer has an affine.
* Convolution (``conv`` object): NHWC throughout, as the engines stream it:
  ``Reshape`` to (1, H, W, C), qonnx's ``Im2Col`` (its vector order is the
  artifact's: window row-major, a position's channels together; ``pad_value``
  = the pad code, or its +-1 value ``2*pad_code - 1`` for an xnor layer), the
  ``MatMul``, the ``MultiThreshold`` (``data_layout`` NHWC), and qonnx's
  ``MaxPoolNHWC`` for a pool (on the output codes, as the engines pool).
  A fully connected layer after a conv ``Reshape``-s the map in HWC order.

Negated neurons need nothing: their weights and thresholds are stored negated
and the graph carries the stored values, as the engines do.

Exactness: QONNX tensors are floats. Every value the graph meets is an
integer, and float32 holds every integer up to 2^24
(:data:`bnnflow.golden.EXACT_FLOAT_LIMITS`), so a layer is exact in float32
when its bound (:func:`layer_bound`: the largest partial sum of its
products, threshold or score, from the actual weights) is within 2^24. With
``precision="auto"`` a layer beyond that runs in float64 (exact to 2^53):
every layer reads small codes, exact in both, so the graph ``Cast``-s to
float64 before such a layer and back to float32 after it (typically only a
score layer with a wide affine). A convolution cannot run in float64 (qonnx's
Im2Col and MaxPoolNHWC type their outputs float32): one beyond 2^24 is
refused, naming it and its bound. ``precision="float32"`` (for tools that
take float32 graphs only) refuses every layer beyond 2^24 the same way.

qonnx/onnx are imported inside the functions (the ``interop`` extra); this
module's top level needs numpy only, so ``bnnflow --help`` works without them.
"""

from __future__ import annotations

import argparse
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from . import artifact as art
from .argtypes import path_text, positive_int
from .extras import require
from .golden import EXACT_FLOAT_LIMITS, GoldenModel

if TYPE_CHECKING:
    from qonnx.core.modelwrapper import ModelWrapper

#: What needs the interop extra, in a "missing module" error.
PURPOSE = "bnnflow qonnx"
#: Domain of qonnx's custom ops (MultiThreshold, Im2Col, MaxPoolNHWC).
QONNX_DOMAIN = "qonnx.custom_op.general"
#: Largest integer magnitude float32 / float64 hold exactly (the golden model's limits).
FLOAT32_EXACT = dict((np.dtype(d), m) for d, m in EXACT_FLOAT_LIMITS)[np.dtype(np.float32)]
FLOAT64_EXACT = dict((np.dtype(d), m) for d, m in EXACT_FLOAT_LIMITS)[np.dtype(np.float64)]
#: ``auto``: each layer float32 where exact, else float64; ``float32``: refuse a layer beyond 2^24 instead.
PRECISIONS = ("auto", "float32")
#: Metadata keys the exporter writes into the ONNX model (ModelWrapper.get_metadata_prop).
METADATA_PREFIX = "bnnflow."


class QonnxExportError(ValueError):
    """The export cannot be written as an exact QONNX graph (the message names the layer and why)."""


def _require_qonnx():
    """Import qonnx (through bnnflow.extras, so a missing install names the 'interop' extra)."""
    require("onnx", "interop", PURPOSE)
    return require("qonnx", "interop", PURPOSE)


# -- data types ------------------------------------------------------------------------------

def unsigned_datatype(bits: int) -> str:
    """qonnx DataType name of unsigned ``bits``-bit codes: BINARY for 1 bit, else UINT<bits>."""
    return "BINARY" if bits == 1 else f"UINT{bits}"


def signed_datatype(lo: int, hi: int) -> str:
    """qonnx DataType name of the narrowest two's-complement type holding [lo, hi] (INT<bits>)."""
    return f"INT{art.bit_length_signed(int(lo), int(hi))}"


def weight_datatype(layer: art.LayerSpec) -> str:
    """qonnx DataType of a layer's weight values: BIPOLAR (1-bit sym), INT(K+1) (K-bit sym), INTK (int).

    K-bit sym values are the odd levels -(2^K - 1)..2^K - 1, which need K + 1
    signed bits; narrow K-bit int values fit INTK.
    """
    if layer.weight_encoding == art.SYM:
        return "BIPOLAR" if layer.weight_bits == 1 else f"INT{layer.weight_bits + 1}"
    return f"INT{layer.weight_bits}"


def reads_bipolar(layer: art.LayerSpec) -> bool:
    """True when the layer's input bits stand for -1/+1 (an ``xnor_*`` layer), so the graph feeds it +-1."""
    return layer.mac == "xnor"


def graph_thresholds(layer: art.LayerSpec, thresholds: np.ndarray) -> np.ndarray:
    """(MH, N) int64 thresholds in the graph's domain: ``T`` (int layers), ``2T - MW`` (xnor layers, bipolar dot).

    See the module docstring: ``acc >= T <=> 2*acc - MW >= 2T - MW`` and
    ``2*acc - MW`` is the bipolar dot over the real MW lanes.
    """
    t = np.asarray(thresholds, dtype=np.int64)
    return 2 * t - layer.in_features if reads_bipolar(layer) else t


# -- exactness --------------------------------------------------------------------------------

def layer_bound(artifact: art.Artifact, i: int) -> int:
    """Largest integer magnitude layer ``i``'s graph arithmetic can meet, from its actual parameters.

    Every partial sum of neuron n's dot is within ``S_n = xmax * sum_i |w[n][i]|``
    (xmax: 1 for +-1 inputs, 2^input_bits - 1 for codes); the graph's
    thresholds are compared as they are; a score is ``mul_n * dot + add_n``,
    within ``|mul_n| * S_n + |add_n|``. The graph's weights are fixed, so the
    actual values (not the data-type bound the engines size for) decide.
    """
    layer = artifact.layers[i]
    xmax = 1 if reads_bipolar(layer) else layer.input_max
    sums = np.abs(artifact.weight_values(i)).sum(axis=1) * xmax
    bound = int(sums.max())
    t = artifact.thresholds(i)
    if t is not None:
        g = graph_thresholds(layer, t)
        bound = max(bound, int(g.max()), -int(g.min()))
    affine = artifact.affine(i)
    if affine is not None:
        bound = max(bound, int((np.abs(affine[:, 0]) * sums + np.abs(affine[:, 1])).max()))
    return bound


@dataclass(frozen=True)
class LayerPlan:
    """How layer ``index`` is written: its float container and the bound that chose it."""

    index: int
    kind: str
    bound: int         # layer_bound()
    precision: str     # "float32" or "float64"


def plan_precision(artifact: art.Artifact, precision: str = "auto") -> list[LayerPlan]:
    """Each layer's float container; :class:`QonnxExportError` naming the layer when none is exact.

    Every layer reads small integer codes (or +-1), exact in any float, so
    each layer gets its own container: float32 when its :func:`layer_bound`
    is within 2^24, else float64 (``auto``; the graph ``Cast``-s at each
    change). A convolution beyond 2^24 is refused: qonnx's Im2Col and
    MaxPoolNHWC type their outputs float32. ``float32``: every layer beyond
    2^24 is refused.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    where = artifact.root / art.MANIFEST
    plans = []
    for i, layer in enumerate(artifact.layers):
        bound = layer_bound(artifact, i)
        what = f"{where}: layer {i} ({layer.kind}{', a convolution' if layer.is_conv else ''}) reaches integers " \
               f"up to {bound:,}, beyond float32's exact range 2^24 = {FLOAT32_EXACT:,}"
        if bound > FLOAT64_EXACT:
            raise QonnxExportError(f"{what} and float64's 2^53")
        if bound > FLOAT32_EXACT and precision == "float32":
            raise QonnxExportError(f"{what}: with --precision float32 it cannot be exact (--precision auto "
                                   "runs it in float64)")
        if bound > FLOAT32_EXACT and layer.is_conv:
            raise QonnxExportError(f"{what}, and a convolution cannot run in float64 (qonnx's Im2Col and "
                                   "MaxPoolNHWC type their outputs float32)")
        plans.append(LayerPlan(i, layer.kind, bound, "float64" if bound > FLOAT32_EXACT else "float32"))
    return plans


# -- the graph ----------------------------------------------------------------------------------

class _GraphBuilder:
    """Accumulates nodes, initializers (with their qonnx DataTypes) and tensor shapes of one graph."""

    def __init__(self) -> None:
        from onnx import TensorProto

        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.datatypes: dict[str, str] = {}
        self.shapes: dict[str, tuple[tuple[int, ...], int]] = {}    # intermediate tensors: (shape, elem type)
        self.elem = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}
        self.np_dtype = {"float32": np.float32, "float64": np.float64}

    def constant(self, name: str, values: np.ndarray, precision: str, datatype: str | None = None) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.asarray(values, dtype=self.np_dtype[precision]), name))
        if datatype:
            self.datatypes[name] = datatype
        return name

    def shape_constant(self, name: str, shape: tuple[int, ...]) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.asarray(shape, dtype=np.int64), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, shape: tuple[int, ...], precision: str, doc: str,
             custom: bool = False, **attrs: Any) -> str:
        from onnx import helper

        node = helper.make_node(op, inputs, [output], domain=QONNX_DOMAIN if custom else "", **attrs)
        node.doc_string = doc
        self.nodes.append(node)
        self.shapes[output] = (tuple(shape), self.elem[precision])
        return output


def _graph_name(artifact: art.Artifact) -> str:
    return f"bnnflow_{artifact.network.get('name', 'network')}"


def build_model(artifact: art.Artifact, precision: str = "auto") -> "ModelWrapper":
    """The cleaned, datatype-annotated QONNX ModelWrapper of ``artifact``'s deployed network (see :func:`build`)."""
    return build(artifact, precision)[0]


def build(artifact: art.Artifact, precision: str = "auto") -> "tuple[ModelWrapper, list[LayerPlan]]":
    """The cleaned, datatype-annotated QONNX ModelWrapper of ``artifact``'s deployed network (batch 1).

    Input ``(1, input_features)``: the export's input codes (the test vectors'
    layout: HWC for images); output ``(1, num_classes)``: the integer scores
    (of the last layer: codes for a unit-test artifact ending in thresholds).
    Cleaned with qonnx's ``cleanup_model`` (InferShapes, constant folding,
    unique and readable names: ``global_in`` / ``global_out``) and
    ``InferDataTypes``; the MultiThreshold outputs are then checked to carry
    the data types the layers define. Also returns the per-layer
    :class:`LayerPlan` (:func:`plan_precision`).
    """
    _require_qonnx()
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.util.basic import qonnx_make_model
    from qonnx.util.cleanup import cleanup_model

    plans = plan_precision(artifact, precision)
    layers = artifact.layers
    g = _GraphBuilder()
    x, shape, prec = "input", (1, artifact.input_features), "float32"
    input_name = x
    g.datatypes[x] = unsigned_datatype(artifact.input_bits)
    expected_mt: list[str] = []                      # MultiThreshold output DataTypes, in node order

    for i, (layer, plan) in enumerate(zip(layers, plans)):
        tag = f"L{i}"
        about = f"bnnflow layer {i} ({layer.kind}"
        if plan.precision != prec:                   # codes are exact in both: change container for this layer
            why = "beyond" if plan.precision == "float64" else "within"
            x = g.node("Cast", [x], f"{tag}_{plan.precision}", shape, plan.precision,
                       f"{about}): its integers reach {plan.bound}, {why} float32's exact 2^24",
                       to=g.elem[plan.precision])
            prec = plan.precision
        if i == 0 and reads_bipolar(layer):          # 1-bit pixels on an xnor layer: bit b -> 2b - 1
            th = g.constant(f"{tag}_input_sign", np.ones((1, 1)), prec)
            x = g.node("MultiThreshold", [x, th], f"{tag}_bipolar_input", shape, prec,
                       f"{about}): input bits as +-1 (bit 1: +1, bit 0: -1)", custom=True,
                       out_dtype="BIPOLAR", out_scale=2.0, out_bias=-1.0, data_layout="NC")
            expected_mt.append("BIPOLAR")
        weights = artifact.weight_values(i).T        # (MW, MH): x @ W
        w = g.constant(f"{tag}_weights", weights, prec, weight_datatype(layer))
        if layer.is_conv:
            c = layer.conv
            geom = c.geometry
            if len(shape) != 4:
                x = g.node("Reshape", [x, g.shape_constant(f"{tag}_map_shape", (1, c.ifm_h, c.ifm_w, c.channels))],
                           f"{tag}_map", (1, c.ifm_h, c.ifm_w, c.channels), prec,
                           f"{about}): the input map in HWC order")
            pad_value = 2 * c.pad_code - 1 if reads_bipolar(layer) else c.pad_code
            x = g.node("Im2Col", [x], f"{tag}_im2col", (1, geom.ofm_h, geom.ofm_w, layer.in_features), prec,
                       f"{about}): {c.kernel}x{c.kernel} windows, pad {c.pad} with {pad_value}", custom=True,
                       stride=[1, 1], kernel_size=[c.kernel, c.kernel],
                       input_shape=f"(1, {c.ifm_h}, {c.ifm_w}, {c.channels})",
                       pad_amount=[c.pad] * 4, pad_value=int(pad_value))
            shape = (1, geom.ofm_h, geom.ofm_w, layer.out_features)
            layout = "NHWC"
        else:
            if len(shape) != 2:
                x = g.node("Reshape", [x, g.shape_constant(f"{tag}_flat_shape", (1, layer.in_features))],
                           f"{tag}_flat", (1, layer.in_features), prec, f"{about}): the map flattened in HWC order")
            shape = (1, layer.out_features)
            layout = "NC"
        dot = "bipolar dot = 2*popcount - MW" if reads_bipolar(layer) else "dot of codes and weights"
        x = g.node("MatMul", [x, w], f"{tag}_dot", shape, prec, f"{about}): {dot}")
        if layer.has_thresholds:
            t = graph_thresholds(layer, artifact.thresholds(i))
            th = g.constant(f"{tag}_thresholds", t, prec, signed_datatype(t.min(), t.max()))
            bipolar_out = i + 1 < len(layers) and reads_bipolar(layers[i + 1])
            out_dtype = "BIPOLAR" if bipolar_out else unsigned_datatype(layer.output_bits)
            rule = "thresholds 2T - MW" if reads_bipolar(layer) else "thresholds T"
            x = g.node("MultiThreshold", [x, th], f"{tag}_out", shape, prec,
                       f"{about}): #{{t: dot >= threshold t}}, {rule}" + (", as +-1" if bipolar_out else ""),
                       custom=True, out_dtype=out_dtype, out_scale=2.0 if bipolar_out else 1.0,
                       out_bias=-1.0 if bipolar_out else 0.0, data_layout=layout)
            expected_mt.append(out_dtype)
            if layer.is_conv and layer.conv.pool:
                k = layer.conv.pool
                h, w_ = layer.conv.out_dims
                shape = (1, h, w_, layer.out_features)
                x = g.node("MaxPoolNHWC", [x], f"{tag}_pool", shape, prec,
                           f"{about}): {k}x{k} max-pool, stride {k}, on the output codes", custom=True,
                           kernel_shape=[k, k], strides=[k, k], pads=[0, 0, 0, 0])
        else:
            affine = artifact.affine(i)
            if affine is not None:
                mul, add = (g.constant(f"{tag}_{name}", v, prec, signed_datatype(v.min(), v.max()))
                            for name, v in (("mul", affine[:, 0]), ("add", affine[:, 1])))
                x = g.node("Mul", [x, mul], f"{tag}_scaled", shape, prec, f"{about}): mul * dot")
                x = g.node("Add", [x, add], f"{tag}_score", shape, prec, f"{about}): score = mul * dot + add")

    output_name = x
    out_shape, out_elem = g.shapes.pop(output_name)
    graph = helper.make_graph(
        g.nodes, _graph_name(artifact),
        inputs=[helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, artifact.input_features])],
        outputs=[helper.make_tensor_value_info(output_name, out_elem, list(out_shape))],
        initializer=g.initializers,
        # known shapes up front: qonnx's shape inference asks MaxPoolNHWC for its input shape first
        value_info=[helper.make_tensor_value_info(n, e, list(s)) for n, (s, e) in g.shapes.items()])
    model = ModelWrapper(qonnx_make_model(graph, producer_name="bnnflow"))
    for name, datatype in g.datatypes.items():
        model.set_tensor_datatype(name, DataType[datatype])
    meta = {
        "network": str(artifact.network.get("name", "")),
        "method": str(artifact.network.get("method", "")),
        "format_version": str(artifact.manifest.get("format_version")),
        "signature": str(artifact.manifest["hardware"]["signature"]),
        "precision": ",".join(p.precision for p in plans),
    }
    for key, value in meta.items():
        model.set_metadata_prop(METADATA_PREFIX + key, value)

    model = cleanup_model(model)
    model = model.transform(InferDataTypes())
    casts = model.get_nodes_by_op_type("Cast")
    if casts:   # InferDataTypes calls a Cast's output FLOAT32: it carries the same integers, so keep their type
        for node in casts:
            model.set_tensor_datatype(node.output[0], model.get_tensor_datatype(node.input[0]))
        model = model.transform(InferDataTypes())
    found = [model.get_tensor_datatype(n.output[0]).name for n in model.get_nodes_by_op_type("MultiThreshold")]
    if found != expected_mt:
        raise RuntimeError(f"qonnx InferDataTypes gives the MultiThreshold outputs {found}, the layers define "
                           f"{expected_mt}")
    return model, plans


# -- execution --------------------------------------------------------------------------------

def execute(model: "ModelWrapper", images: np.ndarray) -> np.ndarray:
    """(N, outputs) float64 outputs of ``model`` on the (N, input_features) codes, by qonnx's ``execute_onnx``.

    The written graph has batch 1. Without convolutions, one run of a copy
    resized by qonnx's ``ChangeBatchSize`` takes all images at once; qonnx's
    Im2Col assumes batch 1, so a conv graph runs image by image. qonnx
    rounds a tensor whose values do not fit its DataType and warns; here that
    warning is an error: the graph must be exact, not rounded.
    """
    _require_qonnx()
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    features = int(np.prod(model.get_tensor_shape(iname)[1:]))
    outputs = int(np.prod(model.get_tensor_shape(oname)[1:]))
    images = np.asarray(images)
    if images.ndim != 2 or images.shape[1] != features:
        raise ValueError(f"images must have shape (N, {features}) (the graph input {iname}), got {images.shape}")
    x = images.astype(np.float32)
    n = x.shape[0]
    batched = n > 1 and not model.get_nodes_by_op_type("Im2Col")
    if batched:
        model = model.transform(ChangeBatchSize(n)).transform(InferShapes())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if batched:
            out = execute_onnx(model, {iname: x})[oname]
        else:
            out = np.concatenate([execute_onnx(model, {iname: row.reshape(1, -1)})[oname].reshape(1, outputs)
                                  for row in x] or [np.empty((0, outputs))])
    trouble = [str(w.message).strip() for w in caught
               if "rounded" in str(w.message) or "disagree" in str(w.message)]
    if trouble:
        raise RuntimeError(f"qonnx execute_onnx: {trouble[0].splitlines()[0]}")
    return out.reshape(n, outputs).astype(np.float64)


@dataclass
class CheckResult:
    """What ``--check`` found: qonnx's outputs against the golden model's scores on the export's test vectors."""

    images: int
    equal_images: int            # images whose whole score row equals golden's
    first_difference: str | None

    @property
    def agreement(self) -> float:
        return self.equal_images / self.images if self.images else 1.0


def check_model(model: "ModelWrapper", artifact: art.Artifact, limit: int | None = None) -> CheckResult:
    """Run ``model`` with qonnx's ``execute_onnx`` on the export's test vectors and compare with golden."""
    from .verify import first_difference
    from .writer import read_vectors

    images, _, _ = read_vectors(artifact)
    if limit is not None:
        images = images[:limit]
    if images.shape[0] == 0:
        raise ValueError(f"{artifact.root}: the export stores no test vectors (vectors.count is 0): "
                         "nothing to check")
    golden = GoldenModel(artifact).scores(images)
    got = execute(model, images)
    equal = int(np.all(got == golden, axis=1).sum())
    return CheckResult(int(images.shape[0]), equal, first_difference(got, golden, "qonnx", "golden"))


def _resolve_export(path: str | Path) -> Path:
    """The export folder: ``path`` if it holds a manifest, else a training run's ``path/export``."""
    path = Path(path)
    for candidate in (path, path / "export"):
        if (candidate / art.MANIFEST).is_file():
            return candidate
    if (path / "config.json").is_file():
        return path / "export"        # a run without an export: art.load says to export it
    raise FileNotFoundError(f"{path}: neither an export folder (no {art.MANIFEST}) nor a training run with one "
                            f"({path / 'export' / art.MANIFEST}); run `bnnflow export RUN` first")


def _check_out(out: str | Path) -> Path:
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"{out}: is a directory; --out names the .onnx file to write")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out}: the directory {out.parent} does not exist (create it first)")
    return out


def export_qonnx(run_or_export: str | Path, out: str | Path, precision: str = "auto", check: bool = False,
                 limit: int | None = None, echo: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Write ``run_or_export``'s deployed network to ``out`` as QONNX; with ``check``, run it on the test vectors.

    Returns ``out``, ``export``, ``layers`` (:class:`LayerPlan` per layer),
    ``nodes`` (op types in order) and ``check`` (a :class:`CheckResult`, or
    None). ``echo`` prints the report lines (None: silent). The file is
    written beside ``out`` first and renamed, so a failure leaves no partial file.
    """
    if limit is not None and not check:
        raise ValueError(f"--limit {limit} applies to --check, which was not given")
    out = _check_out(out)
    artifact = art.load(_resolve_export(run_or_export))
    model, plans = build(artifact, precision)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        model.save(str(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    nodes = [n.op_type for n in model.graph.node]
    result: dict[str, Any] = {"out": str(out), "export": str(artifact.root), "layers": plans, "nodes": nodes,
                              "check": None}
    if echo is not None:
        counts = {op: nodes.count(op) for op in dict.fromkeys(nodes)}
        echo(f"bnnflow qonnx: wrote {out} ({out.stat().st_size:,} bytes) from {artifact.root}")
        echo(f"  {len(plans)} layers, {len(nodes)} nodes: " + ", ".join(f"{n} {op}" for op, n in counts.items()))
        for p in plans:
            echo(f"  layer {p.index} {p.kind:15s} integers up to {p.bound:>12,}  {p.precision}")
    if check:
        result["check"] = res = check_model(model, artifact, limit)
        if echo is not None:
            echo(f"  qonnx execute_onnx on {res.images} test vectors: scores equal the golden model's on "
                 f"{res.equal_images} of {res.images} ({res.agreement * 100:.2f}%)")
            echo(f"FAIL: {res.first_difference}" if res.first_difference else
                 "PASS: every score equals the golden model's")
    return result


# -- the command ------------------------------------------------------------------------------------

HELP = "write an export's deployed integer network as a QONNX graph (ONNX with qonnx's ops)"
DESCRIPTION = (
    "Writes the integer network an export describes (the thing the golden model, the RTL and the HLS compute) "
    "as a QONNX graph: MatMul with bipolar / k-bit integer weights annotated with their QONNX data types, "
    "MultiThreshold nodes with the export's integer thresholds (moved to the bipolar dot, 2T - MW, for "
    "XNOR layers), Im2Col + MatMul + MaxPoolNHWC for convolutions (NHWC, as the hardware streams), and the "
    "score layer (MatMul, then Mul/Add for an affine). The graph is cleaned with qonnx's cleanup_model and "
    "InferDataTypes; its input is the export's input codes (1, input_features), its output the integer "
    "scores. A layer's tensors are float32 when all its integers are exact there (<= 2^24), else float64 "
    "(Cast nodes around it; --precision float32 refuses it instead). --check runs the written graph with "
    "qonnx's execute_onnx on the export's test vectors and compares with the golden model (exit 1 on any "
    "difference). Needs the 'interop' extra. See docs/INTEROP.md.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bnnflow qonnx`` options, on ``parser`` (a subcommand's parser)."""
    parser.add_argument("path", metavar="RUN_OR_EXPORT", type=path_text,
                        help="an export folder (with manifest.json) or a training run whose export/ to write")
    parser.add_argument("--out", required=True, type=path_text, metavar="OUT.onnx",
                        help="the QONNX file to write (its folder must exist; an existing file is replaced)")
    parser.add_argument("--check", action="store_true",
                        help="run the written graph with qonnx's execute_onnx on the export's test vectors and "
                             "print how many score rows equal the golden model's (exit 1 unless all do)")
    parser.add_argument("--limit", type=positive_int, metavar="N",
                        help="--check: only the first N test vectors (a conv net runs image by image through "
                             "qonnx, some 50 ms each; other nets in one batch)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto (default): each layer in float32 when all its integers are exact there "
                             "(<= 2^24), else in float64 (Cast nodes around it; convolutions must fit float32); "
                             "float32: refuse such a layer instead, naming it (for tools that take float32 "
                             "graphs only)")


def main(args: argparse.Namespace) -> int:
    """Run the command: 0 when written (and, with --check, every score equals golden's), 1 on a difference."""
    result = export_qonnx(args.path, args.out, precision=args.precision, check=args.check, limit=args.limit)
    check = result["check"]
    return 1 if check is not None and check.first_difference else 0
