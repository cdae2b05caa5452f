"""``bnnflow import-qonnx``: a Brevitas-exported QONNX binarized MLP becomes an ordinary bnnflow run.

Why: a user who trained a BNN with Brevitas (``brevitas.export.export_qonnx``)
should get bnnflow's export, verification levels and driver without training
again. The importer does not fold anything itself. It rebuilds the network as
a bnnflow ``bnn`` model whose torch forward pass makes the same decisions as
the QONNX graph -- the same 1-bit weights, the same activation bits in every
layer, the same classes -- writes that model as a run folder
(``config.json``, ``model.pt``, ``metrics.json``), and leaves the threshold
folding to bnnflow's own deploy/export (:mod:`bnnflow.model.deploy`).

How a layer maps (docs/INTEROP.md, "From Brevitas (import)"):

- The first layer's input: everything before the first ``Gemm``/``MatMul``
  (the input quantizer, with any Mul/Add of the model's forward) is evaluated
  by qonnx on every pixel code of the dataset. Its dequantized output must be
  an affine function ``alpha * c + beta`` of the code ``c = pixel >> shift``
  that ``--input-bits`` keeps (an unsigned integer input quantizer whose codes
  are the pixels; a BipolarQuant of 1-bit pixels), otherwise the import is
  refused: the engines multiply the pixel codes themselves.
- A layer: 1-bit weights (BipolarQuant, or a 1-bit signed Quant, which
  qonnx reads as bipolar) with a per-tensor or per-output-channel scale, an
  optional bias, then any chain of per-channel affine nodes (BatchNormalization,
  Mul/Div/Add/Sub by constants) and a 1-bit activation quantizer. On the
  integer dot ``d`` of the +-1 weights and the layer's input codes all of that
  is ``z = A[n]*d + B[n]`` followed by a compare, which the rebuilt model holds
  as a BatchNorm with ``running_mean`` = the compare point and ``weight`` =
  ``A`` (its sign), so ``sign(BN(d))`` is the same bit as the QONNX graph's;
  deploy's threshold search then turns that BatchNorm into thresholds.
- The last layer: the same affine chain gives the scores. A shared positive
  factor without per-class offsets leaves the classes as ``argmax(d)``: the
  run is an ordinary ``--method bnn`` MLP (``BNNMLP``, integer scores).
  Otherwise the run is a ``bnn`` MLP written as an FC ``arch`` spec whose last
  BatchNorm holds ``A*d + B``, which export turns into the score affine.

The import checks itself: the QONNX graph (qonnx's execution) and the rebuilt
model are run on the dataset's test split, and every layer's activation bits
and the classes must agree (classes where the graph's top score is not tied),
else it stops naming the layer, neuron and image. The run records where it
came from (``config.json`` ``imported``: file, sha256 of it and of any
external data file it refers to, producer, input mapping; ``metrics.json``:
accuracies and the agreement).

Only numpy and bnnflow are imported at module level; onnx, qonnx and torch are
imported when a command runs (``bnnflow.extras.require``), so ``bnnflow --help``
works without the ``interop`` extra.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from . import artifact as art
from .argtypes import path_text, positive_int
from .extras import require

#: What needs the optional modules, in a "missing extra" message.
PURPOSE = "bnnflow import-qonnx"

HELP = "turn a Brevitas-exported QONNX binarized MLP into a bnnflow run (then export, verify, run it)"

DESCRIPTION = (
    "Reads a QONNX model written by Brevitas (brevitas.export.export_qonnx) for a binarized MLP -- an input "
    "quantizer, Gemm/MatMul layers with 1-bit weights (BipolarQuant or 1-bit Quant, per-tensor or per-channel "
    "scale), BatchNormalization or Mul/Add between them and 1-bit activation quantizers -- and writes OUT as an "
    "ordinary bnnflow run (config.json, model.pt, metrics.json) of --method bnn that makes the same decisions: "
    "`bnnflow export OUT` folds it with bnnflow's own threshold search, `bnnflow verify OUT --against "
    "golden,rtl,hls` and the driver take it. The pixels the hardware reads are the dataset's unsigned codes "
    "(--dataset, --input-bits); --input-scale/--input-offset say how the Brevitas model was fed them "
    "(x = pixel * SCALE + OFFSET), and the model's input quantizer must turn them into values linear in the "
    "codes. The import runs the QONNX graph (qonnx) and the rebuilt model on the test split and stops unless "
    "every layer's activation bits and the classes agree. Anything else (convolutions, real activations, "
    "k-bit weights, branches, other ops) is refused with a message naming the node. Needs the 'interop' "
    "extra (onnx, qonnx) and the 'train' extra (torch, scikit-learn for digits).")

#: Ops that pass data through unchanged (cleanup leaves some; Flatten/Reshape only to (N, features)).
PASS_OPS = ("Identity", "Flatten", "Reshape", "Dropout")
#: Per-channel affine ops between layers (their other operand must be a constant).
AFFINE_OPS = ("BatchNormalization", "Mul", "Div", "Add", "Sub")
QUANT_OPS = ("BipolarQuant", "Quant", "IntQuant")
LAYER_OPS = ("Gemm", "MatMul")
CONV_OPS = ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
            "QuantAvgPool2d", "MaxPoolNHWC", "Im2Col")
ACTIVATION_OPS = ("Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "HardTanh", "HardSigmoid", "Clip", "Elu",
                  "Selu", "Softplus", "Sign")
#: FINN's integer form (thresholds already folded): what `bnnflow qonnx` and FINN's streamlining write.
FOLDED_OPS = ("MultiThreshold", "XnorPopcountMatMul")
#: Relative tolerance of the checks that values are equal / affine (float32 arithmetic of the graph).
RTOL = 1e-5


class QonnxImportError(ValueError):
    """A QONNX model bnnflow cannot import; the message names the file, the node and why."""


# ---------------------------------------------------------------------------
# Reading the graph
# ---------------------------------------------------------------------------


@dataclass
class _Quant:
    """A 1-bit quantizer: output bit = ``z >= t`` (``strict``: ``z > t``); value = ``alpha*(2bit-1) + beta``."""

    node: str
    threshold: float
    strict: bool
    alpha: float
    beta: float


@dataclass
class _Layer:
    """One Gemm/MatMul layer as read from the graph, before it is composed."""

    node: str
    signs: np.ndarray             # (MH, MW) int64 +-1
    weight_scale: np.ndarray      # (MH,) float64 > 0 (times the Gemm's alpha)
    bias: np.ndarray              # (MH,) float64 (beta * C)
    affine: list[tuple[str, np.ndarray, np.ndarray]] = field(default_factory=list)  # (node, a, b) per channel
    quant: _Quant | None = None   # None on the last layer

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.signs.shape)


@dataclass
class ImportedModel:
    """What :func:`read_model` found: the layers, and how the first layer's input reads the pixels."""

    path: Path
    sha256: str
    external_data: dict[str, str]  # external data file name -> sha256 (torch's exporter writes MODEL.onnx.data)
    producer: str
    input_name: str
    input_shape: list[int]        # the graph input's shape without the batch dimension
    prefix_nodes: list[str]       # nodes before the first layer (input quantizer, preprocessing)
    layers: list[_Layer]
    wrapper: Any                  # qonnx ModelWrapper (cleaned up)


def _attr(node, name: str, default=None):
    import onnx

    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _where(path: Path, node) -> str:
    return f"{path}: node '{node.name or node.op_type}' ({node.op_type})"


def load_wrapper(path: str | Path):
    """The cleaned-up qonnx ModelWrapper of ``path``; QonnxImportError for a file that is not an ONNX model."""
    return _load(Path(path))[0]


def _load(path: Path) -> tuple[Any, list[Path]]:
    """(cleaned-up ModelWrapper, the external data files the model refers to).

    torch's ONNX exporter (which Brevitas uses) writes larger initializers to
    ``MODEL.onnx.data`` beside the model; they belong to the model, so they are
    checked to exist and are hashed with it.
    """
    onnx = require("onnx", "interop", PURPOSE)
    require("qonnx", "interop", PURPOSE)
    from google.protobuf.message import DecodeError
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    if path.is_dir():
        raise QonnxImportError(f"{path}: is a folder, expected an ONNX file (brevitas.export.export_qonnx writes one)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QonnxImportError(f"{path}: not an ONNX model (protobuf could not parse it: {reason})") from None
    if not proto.graph.node or not proto.graph.input or not proto.graph.output:
        raise QonnxImportError(f"{path}: not an ONNX model with a graph (it has {len(proto.graph.node)} nodes, "
                               f"{len(proto.graph.input)} inputs, {len(proto.graph.output)} outputs)")
    externals: list[Path] = []
    for tensor in proto.graph.initializer:
        if uses_external_data(tensor):
            location = {e.key: e.value for e in tensor.external_data}.get("location", "")
            file = path.parent / location
            if not location or not file.is_file():
                raise QonnxImportError(f"{path}: initializer '{tensor.name}' is stored in the external file "
                                       f"'{location}', which is missing (keep the .onnx.data file the exporter "
                                       "wrote beside the model)")
            if file not in externals:
                externals.append(file)
    try:
        load_external_data_for_model(proto, str(path.parent))
        wrapper = cleanup_model(ModelWrapper(proto))
    except Exception as exc:  # noqa: BLE001 - onnx/qonnx raise many types for graphs they cannot read
        raise QonnxImportError(f"{path}: qonnx cannot clean up the graph ({type(exc).__name__}: "
                               f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})") from None
    return wrapper, externals


def _constant_names(wrapper) -> set[str]:
    """Tensors that do not depend on the graph input: initializers and nodes of constants only."""
    const = {t.name for t in wrapper.graph.initializer}
    changed = True
    while changed:
        changed = False
        for node in wrapper.graph.node:
            if all(i in const or i == "" for i in node.input) and not all(o in const for o in node.output):
                const.update(node.output)
                changed = True
    return const


def _data_path(wrapper, path: Path, const: set[str]) -> list:
    """The nodes from the graph input to its output, in order; refuses branches and joins by node name."""
    graph = wrapper.graph
    real_inputs = [i for i in graph.input if i.name not in const]
    if len(real_inputs) != 1 or len(graph.output) != 1:
        raise QonnxImportError(f"{path}: the graph has {len(real_inputs)} data inputs and {len(graph.output)} "
                               "outputs; bnnflow imports a classifier with one image input and one score output")
    current, out = real_inputs[0].name, graph.output[0].name
    nodes = []
    while current != out:
        consumers = [n for n in wrapper.find_consumers(current) if n is not None]
        if not consumers:
            raise QonnxImportError(f"{path}: tensor '{current}' reaches no node and is not the graph output")
        if len(consumers) > 1:
            names = ", ".join(f"'{n.name}' ({n.op_type})" for n in consumers)
            raise QonnxImportError(f"{path}: tensor '{current}' feeds {len(consumers)} nodes ({names}); bnnflow "
                                   "imports a plain chain of layers (no branches or skip connections)")
        node = consumers[0]
        others = [i for i in node.input if i and i != current and i not in const]
        if others:
            raise QonnxImportError(f"{_where(path, node)} joins two data paths ('{current}' and '{others[0]}'); "
                                   "bnnflow imports a plain chain of layers (no residual additions or concats)")
        if len(node.output) != 1 and node.op_type not in ("Dropout",):
            raise QonnxImportError(f"{_where(path, node)} has {len(node.output)} outputs; expected one")
        nodes.append(node)
        current = node.output[0]
    return nodes


def _refuse_op(path: Path, node) -> None:
    op = node.op_type
    if op in CONV_OPS:
        raise QonnxImportError(f"{_where(path, node)}: convolutions and pooling are not imported; import-qonnx "
                               "takes fully connected MLPs (train conv nets with `bnnflow train --arch`)")
    if op in FOLDED_OPS:
        raise QonnxImportError(f"{_where(path, node)}: a graph in FINN's folded integer form (thresholds already "
                               "folded, as `bnnflow qonnx` or FINN's streamlining write it); import-qonnx reads the "
                               "quantized model Brevitas exports (Quant/BipolarQuant, BatchNormalization)")
    if op in ACTIVATION_OPS:
        raise QonnxImportError(f"{_where(path, node)}: a real-valued activation; bnnflow's BNN layers pass "
                               "1-bit activations (BipolarQuant or a 1-bit Quant after the BatchNorm)")
    if op not in PASS_OPS + AFFINE_OPS + QUANT_OPS + LAYER_OPS:
        raise QonnxImportError(f"{_where(path, node)}: op {op} is not supported (import-qonnx takes "
                               f"{', '.join(LAYER_OPS + QUANT_OPS + AFFINE_OPS + PASS_OPS)})")


def _value(context: dict, name: str) -> np.ndarray:
    return np.asarray(context[name], dtype=np.float64)


def _per_channel(path: Path, node, value: np.ndarray, n: int, what: str) -> np.ndarray:
    """A constant broadcast over the (N, n) activations as an (n,) vector; refused unless scalar or per channel."""
    v = np.asarray(value, dtype=np.float64)
    if v.size == 1:
        return np.full(n, float(v.reshape(-1)[0]))
    if v.size == n and (v.ndim == 1 or (v.ndim == 2 and v.shape[0] == 1)):
        return v.reshape(n).copy()
    raise QonnxImportError(f"{_where(path, node)}: its {what} has shape {list(v.shape)}, which does not act per "
                           f"channel on the layer's {n} outputs (expected a scalar or {n} values)")


def _affine_of(path: Path, node, context: dict, current: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) per channel of an affine node: out = a * in + b."""
    op = node.op_type
    if op == "BatchNormalization":
        if _attr(node, "training_mode", 0):
            raise QonnxImportError(f"{_where(path, node)}: BatchNormalization in training mode; export the model "
                                   "in eval mode")
        gamma, beta, mean, var = (_per_channel(path, node, _value(context, i), n, label) for i, label in
                                  zip(node.input[1:5], ("scale", "bias", "mean", "variance")))
        eps = float(_attr(node, "epsilon", 1e-5))
        a = gamma / np.sqrt(var + eps)
        return a, beta - mean * a
    const_name = next(i for i in node.input if i != current)
    c = _per_channel(path, node, _value(context, const_name), n, "constant")
    first = node.input[0] == current
    if op == "Mul":
        return c, np.zeros(n)
    if op == "Div":
        if not first:
            raise QonnxImportError(f"{_where(path, node)}: divides a constant by the activations, which is not "
                                   "affine")
        if (c == 0).any():
            raise QonnxImportError(f"{_where(path, node)}: divides by 0 in channel {int(np.argmax(c == 0))}")
        return 1.0 / c, np.zeros(n)
    if op == "Add":
        return np.ones(n), c
    if op == "Sub":
        return (np.ones(n), -c) if first else (-np.ones(n), c)
    raise AssertionError(op)


def _scalar(path: Path, node, context: dict, index: int, what: str) -> float:
    v = _value(context, node.input[index])
    if v.size != 1:
        raise QonnxImportError(f"{_where(path, node)}: {what} has shape {list(v.shape)}; bnnflow's 1-bit "
                               "activations take one (per-tensor) value")
    return float(v.reshape(-1)[0])


def _activation(path: Path, node, context: dict) -> _Quant:
    """The 1-bit activation quantizer ``node`` between two layers."""
    name = node.name or node.op_type
    if node.op_type == "BipolarQuant":
        s = _scalar(path, node, context, 1, "the scale")
        if not s > 0:
            raise QonnxImportError(f"{_where(path, node)}: scale {s:g}; expected a positive scale")
        return _Quant(name, 0.0, False, s, 0.0)
    s = _scalar(path, node, context, 1, "the scale")
    zp = _scalar(path, node, context, 2, "the zero point")
    bits = _scalar(path, node, context, 3, "the bit width")
    signed, narrow = int(_attr(node, "signed", 1)), int(_attr(node, "narrow", 0))
    mode = str(_attr(node, "rounding_mode", "ROUND")).upper()
    if bits != 1:
        raise QonnxImportError(f"{_where(path, node)}: {bits:g}-bit activations; bnnflow's BNN layers pass "
                               "1-bit activations (BipolarQuant or a 1-bit Quant)")
    if not s > 0 or zp != 0:
        raise QonnxImportError(f"{_where(path, node)}: scale {s:g}, zero point {zp:g}; expected a positive scale "
                               "and zero point 0")
    if signed:
        # qonnx reads a 1-bit signed Quant as bipolar: where(x / scale >= 0, 1, -1) * scale
        return _Quant(name, 0.0, False, s, 0.0)
    if narrow:
        raise QonnxImportError(f"{_where(path, node)}: a 1-bit unsigned narrow-range Quant outputs only 0")
    # unsigned 1 bit: code = clamp(round_mode(x / s), 0, 1); the bit reads s * bit = (s/2)(2bit - 1) + s/2
    thresholds = {"ROUND": (0.5 * s, True), "HALF_EVEN": (0.5 * s, True), "FLOOR": (s, False),
                  "CEIL": (0.0, True)}
    if mode not in thresholds:
        raise QonnxImportError(f"{_where(path, node)}: rounding mode {mode}; import-qonnx reads 1-bit unsigned "
                               f"Quant with {', '.join(thresholds)}")
    t, strict = thresholds[mode]
    return _Quant(name, t, strict, 0.5 * s, 0.5 * s)


def _weights(path: Path, node, context: dict, const: set[str], wrapper) -> tuple[np.ndarray, np.ndarray]:
    """(+-1 signs (MH, MW), per-row scale (MH,)) of a Gemm/MatMul's weight operand."""
    if node.op_type == "Gemm":
        if _attr(node, "transA", 0):
            raise QonnxImportError(f"{_where(path, node)}: transA=1 is not a layer on (N, features) inputs")
        weight_name = node.input[1]
    else:
        weight_name = node.input[1]
    if weight_name not in const:
        raise QonnxImportError(f"{_where(path, node)}: its weights are not constant")
    producer = wrapper.find_producer(weight_name)
    while producer is not None and producer.op_type in PASS_OPS + ("Transpose",):
        producer = wrapper.find_producer(producer.input[0])
    if producer is None or producer.op_type not in QUANT_OPS:
        raise QonnxImportError(f"{_where(path, node)}: its weights are real (no BipolarQuant or 1-bit Quant "
                               "on them); bnnflow imports binarized (1-bit) weights")
    if producer.op_type != "BipolarQuant":
        bits = _value(context, producer.input[3])
        signed = int(_attr(producer, "signed", 1))
        if bits.size != 1 or float(bits.reshape(-1)[0]) != 1 or not signed:
            shown = f"{float(bits.reshape(-1)[0]):g}-bit" if bits.size == 1 else "per-channel bit widths"
            kind = "signed" if signed else "unsigned"
            raise QonnxImportError(f"{_where(path, producer)} quantizes the weights of '{node.name}' to {shown} "
                                   f"{kind} codes; bnnflow imports binarized weights (BipolarQuant, or a 1-bit "
                                   "signed Quant)")
        zp = _value(context, producer.input[2])
        if np.any(zp != 0):
            raise QonnxImportError(f"{_where(path, producer)}: weight zero point {zp.reshape(-1)[0]:g}; expected 0")
    w = _value(context, weight_name)
    if w.ndim != 2:
        raise QonnxImportError(f"{_where(path, node)}: weights of shape {list(w.shape)}; expected a matrix")
    trans_b = node.op_type == "Gemm" and bool(_attr(node, "transB", 0))
    w = w if trans_b else w.T                      # (MH, MW): one row per output neuron
    alpha = float(_attr(node, "alpha", 1.0)) if node.op_type == "Gemm" else 1.0
    scale = np.abs(w).max(axis=1)
    if not np.all(scale > 0) or not np.allclose(np.abs(w), scale[:, None], rtol=RTOL, atol=0):
        n = int(np.argmax(np.abs(np.abs(w) - scale[:, None]).max(axis=1)))
        raise QonnxImportError(f"{_where(path, node)}: row {n} of its quantized weights is not +-one scale "
                               f"(|w| ranges {np.abs(w[n]).min():g}..{np.abs(w[n]).max():g}); expected 1-bit weights")
    signs = np.where(w >= 0, 1, -1).astype(np.int64)
    if alpha < 0:
        signs, alpha = -signs, -alpha
    return signs, scale * alpha


def _bias(path: Path, node, context: dict, n: int) -> np.ndarray:
    if node.op_type != "Gemm" or len(node.input) < 3 or not node.input[2]:
        return np.zeros(n)
    beta = float(_attr(node, "beta", 1.0))
    return beta * _per_channel(path, node, _value(context, node.input[2]), n, "bias C")


def read_model(path: str | Path, context: dict | None = None, wrapper=None) -> ImportedModel:
    """The layers of a QONNX binarized MLP, or QonnxImportError naming the node that does not fit.

    ``context`` is a qonnx execution context of the graph (for constants computed by nodes, such as the
    weight quantizers' outputs); without it the graph is executed once on zeros. ``wrapper``: the
    file's cleaned-up graph when :func:`load_wrapper` has read it already.
    """
    path = Path(path)
    externals: list[Path] = []
    if wrapper is None:
        wrapper, externals = _load(path)
    const = _constant_names(wrapper)
    nodes = _data_path(wrapper, path, const)
    for node in nodes:
        _refuse_op(path, node)
    input_name = next(i.name for i in wrapper.graph.input if i.name not in const)
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in (wrapper.get_tensor_shape(input_name) or [])]
    if len(shape) < 2:
        raise QonnxImportError(f"{path}: the graph input '{input_name}' has shape {shape}; expected a batch of "
                               "images, (1, features) or (1, channels, height, width)")
    if context is None:
        context = execute(wrapper, np.zeros((1, int(np.prod(shape[1:]))), dtype=np.float32), input_name, shape)
    positions = [i for i, n in enumerate(nodes) if n.op_type in LAYER_OPS]
    if not positions:
        raise QonnxImportError(f"{path}: the graph has no Gemm or MatMul layer")
    if len(positions) < 2:
        raise QonnxImportError(f"{path}: one layer ('{nodes[positions[0]].name}'); bnnflow's BNN MLPs have at least "
                               "one hidden layer (a 1-bit activation between two layers)")
    prefix = nodes[:positions[0]]
    if not any(n.op_type in QUANT_OPS for n in prefix):
        first = nodes[positions[0]]
        raise QonnxImportError(f"{_where(path, first)}: the first layer reads the input unquantized; bnnflow's "
                               "first layer multiplies integer pixel codes (put an input QuantIdentity in front)")
    for node in prefix:
        if node.op_type == "BatchNormalization":
            raise QonnxImportError(f"{_where(path, node)}: normalization before the first layer; the engines "
                                   "read the pixel codes themselves")
    layers: list[_Layer] = []
    for k, pos in enumerate(positions):
        node = nodes[pos]
        end = positions[k + 1] if k + 1 < len(positions) else len(nodes)
        signs, scale = _weights(path, node, context, const, wrapper)
        mh, mw = signs.shape
        a_shape = [int(d) for d in np.asarray(context[node.input[0]]).shape]
        if len(a_shape) != 2 or a_shape[1] != mw:
            raise QonnxImportError(f"{_where(path, node)}: reads inputs of shape {a_shape} with weights of "
                                   f"{mw} columns; the engines take (N, features) vectors")
        if k > 0 and mw != layers[-1].shape[0]:
            raise QonnxImportError(f"{_where(path, node)}: reads {mw} features but the previous layer has "
                                   f"{layers[-1].shape[0]} outputs")
        layer = _Layer(node.name or node.op_type, signs, scale, _bias(path, node, context, mh))
        current = node.output[0]
        for post in nodes[pos + 1:end]:
            if post.op_type in PASS_OPS:
                out_shape = list(np.asarray(context[post.output[0]]).shape)
                if len(out_shape) != 2 or out_shape[1] != mh:
                    raise QonnxImportError(f"{_where(path, post)}: reshapes the layer's (N, {mh}) outputs to "
                                           f"{out_shape}")
            elif layer.quant is not None:
                raise QonnxImportError(f"{_where(path, post)} follows the activation quantizer '{layer.quant.node}' "
                                       f"of layer {k} ('{layer.node}'); the next layer must read the 1-bit "
                                       "activations themselves")
            elif post.op_type in AFFINE_OPS:
                a, b = _affine_of(path, post, context, current, mh)
                layer.affine.append((post.name or post.op_type, a, b))
            elif post.op_type in QUANT_OPS:
                if k + 1 == len(positions):
                    raise QonnxImportError(f"{_where(path, post)} quantizes the scores of the last layer "
                                           f"('{layer.node}'); bnnflow's score layer outputs the integer sums")
                layer.quant = _activation(path, post, context)
            current = post.output[0]
        if k + 1 < len(positions) and layer.quant is None:
            nxt = nodes[positions[k + 1]]
            raise QonnxImportError(f"{_where(path, nxt)} reads layer {k} ('{layer.node}') without a 1-bit "
                                   "activation quantizer between them (BipolarQuant or a 1-bit Quant, after the "
                                   "BatchNorm); bnnflow's hidden layers output 1-bit activations")
        layers.append(layer)
    return ImportedModel(path, art.sha256_file(path), {f.name: art.sha256_file(f) for f in externals}, _producer(wrapper),
                         input_name, shape[1:],
                         [n.name or n.op_type for n in prefix], layers, wrapper)


def _producer(wrapper) -> str:
    m = wrapper.model
    return " ".join(v for v in (m.producer_name, m.producer_version) if v) or "unknown"


def execute(wrapper, x: np.ndarray, input_name: str, input_shape: list[int]) -> dict:
    """The qonnx execution context (every tensor) of the graph on the (N, features) float inputs ``x``."""
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    n = len(x)
    model = wrapper.transform(ChangeBatchSize(n)).transform(InferShapes())
    feed = np.asarray(x, dtype=np.float32).reshape([n] + list(input_shape[1:]))
    return execute_onnx(model, {input_name: feed}, return_full_exec_context=True)


# ---------------------------------------------------------------------------
# The input mapping
# ---------------------------------------------------------------------------


@dataclass
class InputMapping:
    """How the first layer reads the pixels: code ``c = pixel >> shift``, value ``alpha*c + beta``."""

    input_bits: int
    shift: int
    alpha: float
    beta: float


def input_mapping(model: ImportedModel, first_input: np.ndarray, full_bits: int, input_bits: int | None,
                  dataset: str) -> InputMapping:
    """The pixel codes the first layer multiplies, from the first layer's input on every pixel value.

    ``first_input`` (2^full_bits, features): the graph's input of the first
    Gemm when every pixel of an image is p, p = 0, 1, .... The values must be
    the same for every feature (one quantizer for the image), depend on p only
    through ``p >> shift`` and be affine in it; the smallest code width that
    works is chosen unless ``input_bits`` is given.
    """
    layer = model.layers[0].node
    where = f"{model.path}: the input quantizer ({', '.join(model.prefix_nodes)}) of layer 0 ('{layer}')"
    v = np.asarray(first_input, dtype=np.float64)
    spread = np.abs(v - v[:, :1]).max(axis=1)
    scale = max(float(np.abs(v).max()), 1e-30)
    if (spread > RTOL * scale).any():
        p = int(np.argmax(spread))
        raise QonnxImportError(f"{where} treats the features differently (pixel value {p} gives "
                               f"{v[p].min():g}..{v[p].max():g}); the engines read every pixel the same way")
    values = v[:, 0]
    widths = [input_bits] if input_bits is not None else list(range(1, full_bits + 1))
    tried = []
    for bits in widths:
        shift = full_bits - bits
        codes = np.arange(len(values)) >> shift
        per_code = np.array([values[codes == c][0] for c in range(1 << bits)])
        same = np.allclose(values, per_code[codes], rtol=0, atol=RTOL * scale)
        alpha = float(per_code[1] - per_code[0])
        beta = float(per_code[0])
        affine = np.allclose(per_code, alpha * np.arange(1 << bits) + beta, rtol=0, atol=RTOL * scale)
        if same and affine and alpha != 0:
            return InputMapping(bits, shift, alpha, beta)
        tried.append((bits, same, per_code))
    bits, same, per_code = tried[-1]
    table = ", ".join(f"{p}: {values[p]:.6g}" for p in range(min(len(values), 1 << full_bits, 20)))
    if not same:
        shift = full_bits - bits
        codes = np.arange(len(values)) >> shift
        p = int(np.argmax(np.abs(values - per_code[codes]) > RTOL * scale))
        q = int(np.argmax(codes == codes[p]))
        why = (f"pixels {q} and {p} of {dataset} give different values ({values[q]:.6g}, {values[p]:.6g}) but "
               f"--input-bits {bits} reads both as code {int(codes[p])}")
    else:
        why = f"its values for the {bits}-bit codes are not a linear function of the code"
    raise QonnxImportError(f"{where}: {why}; bnnflow's first layer multiplies the pixel codes themselves, so "
                           f"the quantizer must map them linearly (values by pixel: {table}). Check "
                           "--input-scale/--input-offset (how the model was fed the pixels) and --input-bits; a "
                           "learned input scale rounds x/scale to other codes than the pixels: give the input "
                           "QuantIdentity a constant scale equal to --input-scale (Uint8ActPerTensorFloat with "
                           "scaling_impl_type=CONST, max_val=255*SCALE)")


# ---------------------------------------------------------------------------
# The bnnflow model
# ---------------------------------------------------------------------------


@dataclass
class _Composed:
    """A layer as ``z = A*d + B`` on the integer dot ``d`` of its +-1 weights and input codes."""

    A: np.ndarray
    B: np.ndarray


def compose(model: ImportedModel, mapping: InputMapping) -> list[_Composed]:
    """Every layer's pre-activation (or score) as an affine function of its integer dot.

    Layer k reads codes c with values ``alpha*c + beta`` (pixel codes for layer
    0, +-1 for the others); its Gemm gives ``s[n]*(alpha*d + beta*sum_i w[n,i]) + bias``
    and each affine node after it maps (A, B) to (a*A, a*B + b).
    """
    out = []
    alpha, beta = mapping.alpha, mapping.beta
    for layer in model.layers:
        wsum = layer.signs.sum(axis=1).astype(np.float64)
        A = layer.weight_scale * alpha
        B = layer.weight_scale * beta * wsum + layer.bias
        for _, a, b in layer.affine:
            A, B = a * A, a * B + b
        out.append(_Composed(A, B))
        if layer.quant is not None:
            alpha, beta = layer.quant.alpha, layer.quant.beta
    return out


def _compare_point(A: np.ndarray, B: np.ndarray, quant: _Quant) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BatchNorm (weight, bias, running_mean) whose sign on the integer dot is the quantizer's bit.

    bit = [A*d + B >= t] (or >); with m = (t - B) / A that is d >= m for A > 0
    and d <= m for A < 0. A BatchNorm with running_mean m (float32), running_var 1,
    weight sign(A) and bias 0 computes sign(A)*(d - m)/sqrt(1 + eps): only the
    compare point matters to the bit, and m is rounded once (for the strict
    compares, moved to the next float32 past it, since integer dots are float32
    values). A = 0 is a constant neuron: weight 0 and bias +-1.
    """
    mh = len(A)
    weight = np.zeros(mh, dtype=np.float32)
    bias = np.zeros(mh, dtype=np.float32)
    mean = np.zeros(mh, dtype=np.float32)
    for n in range(mh):
        a, b = float(A[n]), float(B[n])
        if a == 0.0:
            on = b > quant.threshold if quant.strict else b >= quant.threshold
            bias[n] = 1.0 if on else -1.0
            continue
        m = np.float32((quant.threshold - b) / a)
        # d >= m (a > 0) / d <= m (a < 0); strict: d > m / d < m, i.e. past the next float32
        if quant.strict:
            m = np.nextafter(m, np.float32(np.inf if a > 0 else -np.inf), dtype=np.float32)
        weight[n], mean[n] = np.float32(1.0 if a > 0 else -1.0), m
    return weight, bias, mean


def _shared_scores(c: _Composed) -> bool:
    """True when the scores are one positive factor times the dot plus one shared offset (argmax of the dot)."""
    A, B = c.A, c.B
    return bool(A.min() > 0 and (A.max() - A.min()) <= 1e-9 * A.max()
                and (B.max() - B.min()) <= 1e-9 * max(1.0, float(np.abs(B).max())))


def build_config(model: ImportedModel, mapping: InputMapping, composed: list[_Composed], dataset: str,
                 split_seed: int, data) -> dict:
    """The run's config.json: a ``bnn`` MLP (``hidden``) or, with per-class score factors, an FC ``arch`` spec.

    ``dataset`` / ``split_seed`` are what ``bnnflow export`` reloads the data with; ``data`` the loaded
    :class:`~bnnflow.datasets.Dataset` (its shapes and classes).
    """
    hidden = [layer.shape[0] for layer in model.layers[:-1]]
    config: dict[str, Any] = {
        "method": "bnn",
        "dataset": dataset,
        "split_seed": split_seed,
        "input_features": data.input_features,
        "input_shape": list(data.input_shape),
        "input_bits": mapping.input_bits,
        "num_classes": data.num_classes,
    }
    if _shared_scores(composed[-1]):
        config.update({"arch": "mlp", "hidden": hidden})
    else:
        config.update({"arch": "-".join(f"FC{h}" for h in hidden)})
    return config


def build_state(net, model: ImportedModel, composed: list[_Composed]) -> dict:
    """The rebuilt model's state dict: sign weights, and BatchNorms holding each layer's compare (or scores)."""
    import torch
    import torch.nn as nn

    from .model.layers import QuantLinear

    linears = [m for m in net.modules() if isinstance(m, QuantLinear)]
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm1d)]
    with torch.no_grad():
        for k, (layer, lin) in enumerate(zip(model.layers, linears)):
            lin.weight.copy_(torch.from_numpy(layer.signs.astype(np.float32)))
            if k + 1 < len(model.layers):
                weight, bias, mean = _compare_point(composed[k].A, composed[k].B, layer.quant)
                bn = norms[k]
                bn.weight.copy_(torch.from_numpy(weight))
                bn.bias.copy_(torch.from_numpy(bias))
                bn.running_mean.copy_(torch.from_numpy(mean))
                bn.running_var.fill_(1.0)
        if len(norms) == len(model.layers):         # the FC-spec net: its last BatchNorm holds A*d + B
            bn, c = norms[-1], composed[-1]
            eps = float(bn.eps)
            bn.weight.copy_(torch.from_numpy((c.A * math.sqrt(1.0 + eps)).astype(np.float32)))
            bn.bias.copy_(torch.from_numpy(c.B.astype(np.float32)))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
        if hasattr(net, "log_temperature"):
            net.log_temperature.zero_()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


# ---------------------------------------------------------------------------
# The check against the QONNX graph
# ---------------------------------------------------------------------------


@dataclass
class Agreement:
    """How the rebuilt model agrees with the QONNX graph on the test split (:func:`check_agreement`)."""

    images: int
    layers_equal: bool            # every hidden layer's activation bits are the graph's
    classes_defined: int          # images whose graph top score is not tied
    classes_agree: int            # of those, images where the classes are equal
    ties_resolved: int            # tied images where bnnflow's class is one of the tied top classes
    onnx_accuracy: float          # the graph's own test accuracy (its argmax)


def graph_bits(model: ImportedModel, context: dict) -> list[np.ndarray]:
    """The graph's activation bits entering every layer after the first, (N, MW) int64 0/1 each."""
    out = []
    nodes = {n.name or n.op_type: n for n in model.wrapper.graph.node}
    for prev, layer in zip(model.layers, model.layers[1:]):
        v = _value(context, nodes[layer.node].input[0])
        q = prev.quant
        out.append(((v - q.beta) / q.alpha > 0).astype(np.int64))
    return out


def torch_bits(net, x) -> tuple[list[np.ndarray], np.ndarray]:
    """The rebuilt model's activation bits after every hidden layer's sign, and its scores (forward pass)."""
    import torch
    import torch.nn as nn

    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm1d)]
    seen: list[torch.Tensor] = []
    hooks = [bn.register_forward_hook(lambda _m, _i, o: seen.append(o.detach())) for bn in norms]
    try:
        with torch.no_grad():
            scores = net(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()
    finally:
        for h in hooks:
            h.remove()
    return [(s >= 0).to(torch.int64).numpy() for s in seen], scores


def check_agreement(model: ImportedModel, context: dict, net, pixels: np.ndarray, labels: np.ndarray,
                    output_name: str) -> Agreement:
    """Compare the rebuilt model with the QONNX graph's execution ``context`` on ``pixels``; errors name the spot."""
    ours, scores = torch_bits(net, pixels)
    theirs = graph_bits(model, context)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        if a.shape != b.shape:
            raise QonnxImportError(f"{model.path}: layer {k}: the rebuilt model has {a.shape[1]} activations, the "
                                   f"graph {b.shape[1]}")
        diff = np.argwhere(a != b)
        if len(diff):
            i, n = (int(v) for v in diff[0])
            raise QonnxImportError(f"{model.path}: layer {k} ('{model.layers[k].node}'), neuron {n}, test image {i}: "
                                   f"the rebuilt bnnflow model's activation bit is {a[i, n]}, the QONNX graph's "
                                   f"{b[i, n]} ({len(diff)} bits differ); please report this with the model file")
    graph_scores = _value(context, output_name).reshape(len(pixels), -1)
    ours_cls = scores.argmax(axis=1)
    top = graph_scores.max(axis=1, keepdims=True)
    tol = RTOL * np.maximum(np.abs(graph_scores).max(axis=1, keepdims=True), 1e-30)
    tied = (graph_scores >= top - tol)
    defined = tied.sum(axis=1) == 1
    theirs_cls = graph_scores.argmax(axis=1)
    wrong = np.flatnonzero(defined & (ours_cls != theirs_cls) | ~defined & ~tied[np.arange(len(pixels)), ours_cls])
    if len(wrong):
        i = int(wrong[0])
        top_classes = np.flatnonzero(tied[i]).tolist()
        raise QonnxImportError(f"{model.path}: test image {i}: the rebuilt bnnflow model's class is {int(ours_cls[i])}, "
                               f"the QONNX graph's top score is class {' = '.join(map(str, top_classes))} "
                               f"({len(wrong)} images differ); please report this with the model file")
    return Agreement(len(pixels), True, int(defined.sum()), int(defined.sum()), int((~defined).sum()),
                     float((theirs_cls == labels).mean()))


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


def import_qonnx(path: str | Path, out: str | Path, dataset: str = "digits", split_seed: int = 0,
                 input_bits: int | None = None, input_scale: float = 1.0, input_offset: float = 0.0) -> dict:
    """Import ``path`` into the run folder ``out``; returns the metrics written (accuracies, agreement).

    The dataset's pixels p (all of its bits) are fed to the graph as
    ``p * input_scale + input_offset``; the rebuilt model reads ``p >> shift``
    (``input_bits``, or the fewest bits the input quantizer needs). Raises
    :class:`QonnxImportError` naming the node for anything bnnflow cannot run.
    """
    for module in ("onnx", "qonnx"):
        require(module, "interop", PURPOSE)
    require("torch", "train", PURPOSE)
    import torch

    from .datasets import load_dataset
    from .model import build_model

    if not (math.isfinite(input_scale) and input_scale != 0 and math.isfinite(input_offset)):
        raise ValueError(f"--input-scale {input_scale!r} / --input-offset {input_offset!r}: expected finite "
                         "numbers, a non-zero scale")
    path, out = Path(path), Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    probe_model = read_model(path)                        # refusals before any data is loaded
    full = load_dataset(dataset, split_seed)
    full_bits = int(full.input_bits)
    if input_bits is not None and not 1 <= input_bits <= full_bits:
        raise ValueError(f"--input-bits must be 1..{full_bits} (the {dataset} pixels have {full_bits} bits), "
                         f"got {input_bits}")
    features = int(np.prod(probe_model.input_shape)) if probe_model.input_shape else 0
    first = probe_model.layers[0]
    if features != full.input_features or first.shape[1] != full.input_features:
        raise QonnxImportError(f"{path}: the model reads {features} inputs (layer 0 '{first.node}' has "
                               f"{first.shape[1]} columns) but the {dataset} images have {full.input_features} "
                               "pixels")
    last = probe_model.layers[-1]
    if last.shape[0] != full.num_classes:
        raise QonnxImportError(f"{path}: the last layer ('{last.node}') has {last.shape[0]} outputs but {dataset} "
                               f"has {full.num_classes} classes")
    # one execution: a probe image per pixel value (every pixel = p), then the test split
    probes = np.repeat(np.arange(1 << full_bits, dtype=np.float64)[:, None], full.input_features, axis=1)
    feed = np.concatenate([probes, full.x_test.astype(np.float64)]) * input_scale + input_offset
    shape = [1] + list(probe_model.input_shape)
    context = execute(probe_model.wrapper, feed, probe_model.input_name, shape)
    const = _constant_names(probe_model.wrapper)
    model = read_model(path, _sliced(context, 0, len(probes), const), probe_model.wrapper)
    first_node = next(n for n in model.wrapper.graph.node if (n.name or n.op_type) == model.layers[0].node)
    mapping = input_mapping(model, _value(context, first_node.input[0])[:len(probes)], full_bits, input_bits,
                            dataset)
    data = load_dataset(dataset, split_seed, mapping.input_bits)
    composed = compose(model, mapping)
    config = build_config(model, mapping, composed, dataset, split_seed, data)
    from .model.methods import resolve_config

    config = resolve_config(config)
    net = build_model(config)
    net.eval()
    state = build_state(net, model, composed)
    net.load_state_dict(state)
    net.eval()
    test_context = _sliced(context, len(probes), len(feed), const)
    agreement = check_agreement(model, test_context, net, data.x_test, data.y_test, model.wrapper.graph.output[0].name)
    with torch.no_grad():
        test_acc = float((net(torch.from_numpy(data.x_test.astype(np.float32))).argmax(1).numpy()
                          == data.y_test).mean())
        train_acc = float((net(torch.from_numpy(data.x_train.astype(np.float32))).argmax(1).numpy()
                           == data.y_train).mean())
    config["imported"] = {
        "format": "qonnx",
        "file": str(path),
        "sha256": model.sha256,
        "external_data": probe_model.external_data,
        "producer": model.producer,
        "input": {"scale": input_scale, "offset": input_offset, "input_bits": mapping.input_bits,
                  "value_per_code": mapping.alpha, "value_at_code_0": mapping.beta},
        "layers": [{"node": layer.node, "shape": list(layer.shape), "weight_scale": _summary(layer.weight_scale),
                    "affine": [name for name, _, _ in layer.affine],
                    "activation": None if layer.quant is None else layer.quant.node} for layer in model.layers],
    }
    metrics = {
        "train_acc": train_acc,
        "test_acc": test_acc,
        "epochs": [],
        "imported": {
            "file": str(path),
            "sha256": model.sha256,
            "test_images": agreement.images,
            "qonnx_test_acc": agreement.onnx_accuracy,
            "activation_bits_equal": agreement.layers_equal,
            "classes_defined": agreement.classes_defined,
            "classes_agree": agreement.classes_agree,
            "tied_images": agreement.images - agreement.classes_defined,
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    torch.save(state, out / "model.pt")
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _summary(values: np.ndarray) -> float | list[float]:
    v = np.asarray(values, dtype=np.float64)
    return float(v[0]) if np.all(v == v[0]) else [float(x) for x in v]


def _sliced(context: dict, start: int, stop: int, const: set[str]) -> dict:
    """The execution context restricted to batch rows start..stop (constant tensors unchanged)."""
    return {name: value if name in const or not isinstance(value, np.ndarray) or value.ndim == 0
            else value[start:stop] for name, value in context.items()}


def _number(text: str) -> float:
    """A finite number, also written as a fraction (``1/255``: MNIST fed pixel/255)."""
    try:
        exact = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number such as 0.0625 or 1/16, got {text!r}") from None
    try:
        return float(exact)
    except OverflowError:
        raise argparse.ArgumentTypeError(f"must be a finite float, got {text!r}") from None


def _scale(text: str) -> float:
    value = _number(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must not be 0 (the model would see the same input for every pixel)")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``bnnflow import-qonnx`` (see DESCRIPTION)."""
    parser.add_argument("model", type=path_text, metavar="MODEL",
                        help="the QONNX file (brevitas.export.export_qonnx(model, input_t=..., export_path=MODEL))")
    parser.add_argument("--out", required=True, type=path_text, metavar="RUN",
                        help="run folder to write (config.json, model.pt, metrics.json)")
    parser.add_argument("--dataset", default="digits",
                        help="the dataset whose pixels the hardware reads: digits (default), mnist or idx:DIR; "
                             "its test split checks the import and becomes the export's test vectors")
    parser.add_argument("--split-seed", type=int, default=0, metavar="SEED",
                        help="seed of the digits train/test split (default 0, as `bnnflow train`)")
    parser.add_argument("--input-bits", type=positive_int, metavar="K",
                        help="pixel bits the first layer reads (the top K bits, as `bnnflow train --input-bits`); "
                             "default: the fewest that the model's input quantizer needs (1 for a binarized input)")
    parser.add_argument("--input-scale", type=_scale, default=1.0, metavar="SCALE",
                        help="the model was fed x = pixel * SCALE + OFFSET (pixel = the dataset's unsigned "
                             "values: digits 0..16, MNIST 0..255); a number or a fraction such as 1/16; "
                             "default 1")
    parser.add_argument("--input-offset", type=_number, default=0.0, metavar="OFFSET",
                        help="OFFSET of --input-scale, e.g. -1 for x = 2*pixel/255 - 1 (default 0)")


def main(args: argparse.Namespace) -> int:
    """Run ``bnnflow import-qonnx``: write the run, print what was imported and how it agrees."""
    metrics = import_qonnx(args.model, args.out, dataset=args.dataset, split_seed=args.split_seed,
                           input_bits=args.input_bits, input_scale=args.input_scale,
                           input_offset=args.input_offset)
    out = Path(args.out)
    config = json.loads((out / "config.json").read_text())
    imp, info = metrics["imported"], config["imported"]
    shapes = " -> ".join([str(config["input_features"])] + [str(l["shape"][0]) for l in info["layers"]])
    kind = f"hidden {config['hidden']}" if config["arch"] == "mlp" else f"arch {config['arch']}"
    print(f"imported {args.model} ({info['producer']}, sha256 {imp['sha256'][:12]}): {len(info['layers'])} "
          f"binarized layers {shapes}, {config['input_bits']}-bit input codes")
    print(f"run {out}: --method bnn, {kind}; test accuracy {metrics['test_acc'] * 100:.2f}% "
          f"(train {metrics['train_acc'] * 100:.2f}%)")
    print(f"checked against the QONNX graph on {imp['test_images']} test images: activation bits of every layer "
          f"equal, classes agree on {imp['classes_agree']}/{imp['classes_defined']} "
          f"(+{imp['tied_images']} with a tied top score, resolved to one of the tied classes)")
    print(f"next: bnnflow export {out} && bnnflow verify {out} --against golden,rtl,hls")
    return 0
