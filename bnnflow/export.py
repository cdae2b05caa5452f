"""Export a trained run of any quantized method: integer layers, thresholds, affines -> artifact.

:mod:`bnnflow.model.deploy` turns the model into integer layers whose
per-neuron level functions are the model's own modules; each threshold is
found by searching that function over the integer dot range (never a closed
form), so the exported compare agrees with the torch reference bit for bit.
This module moves the result into the artifact's terms (weight codes,
thresholds in the accumulator domain, the XNOR form of 1-bit layers) and
writes it, with the calibrated deployment constants in ``network.deployment``
(docs/DEPLOY.md).

torch (the ``train`` extra) is imported inside the functions that use it, so
``import bnnflow.export`` works on a numpy-only install and a call without
torch raises :class:`~bnnflow.extras.MissingExtraError` naming the extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import artifact as art
from .datasets import load_dataset
from .extras import require
from .folding import LayerFolding, default_folding, load_folding
from .writer import LayerData, write_artifact

if TYPE_CHECKING:
    import torch


#: What the torch-only steps of this module are called in a "missing torch" error.
PURPOSE = "bnnflow export (reading the trained torch model)"


def binary_input_as_xnor(layer: LayerData) -> LayerData:
    """The XNOR-popcount form of an ``int_threshold`` layer on 1-bit (0/1) inputs with 1-bit weights.

    With x in {0, 1} and weights w in {-1, +1}, the integer sum and the XNOR
    popcount P of the same bits (bit 0 read as -1) differ by a per-neuron
    constant: ``sum w*x = P - n``, n = the neuron's number of -1 weights
    (each -1 weight adds 1 to P when x = 0 and subtracts 1 from the sum when
    x = 1). So ``sum >= T <=> P >= T + n``: the same bits, weights and
    outputs, with the thresholds shifted into popcount terms. This is how
    BNN-PYNQ's LFC reads binarized pixels, and how DoReFa's 1-bit (0/1)
    activations run; it puts the layer on the XNOR lanes, which cost a
    fraction of integer lanes (docs/PERFORMANCE.md).
    """
    if (layer.kind != art.INT_THRESHOLD or layer.input_bits != 1 or layer.thresholds is None
            or layer.weight_bits != 1 or layer.weight_encoding != art.SYM):
        raise ValueError(f"only a 1-bit int_threshold layer with 1-bit sym weights has an XNOR form; got "
                         f"{layer.kind} with input_bits={layer.input_bits}, weight_bits={layer.weight_bits} "
                         f"{layer.weight_encoding}")
    codes = np.asarray(layer.weights)
    mw = codes.shape[1]
    negative_weights = mw - codes.sum(axis=1, dtype=np.int64)
    t = np.asarray(layer.thresholds, dtype=np.int64)
    shift = negative_weights if t.ndim == 1 else negative_weights[:, None]
    popcount_thresholds = np.clip(t + shift, 0, mw + 1)
    return LayerData(art.XNOR_THRESHOLD, codes, popcount_thresholds, input_bits=1,
                     negated_neurons=layer.negated_neurons, conv=layer.conv)


def deployed_network(model: torch.nn.Module, config: dict, dataset=None, abits: int | None = None,
                     constants: dict | None = None):
    """The :class:`~bnnflow.model.deploy.DeployedNet` of a trained model (the verify reference).

    ``dataset`` (its training split) calibrates the constants real activations
    need (BinaryConnect, XNOR-Net); ``constants`` (an artifact's
    ``network.deployment``) rebuilds the same network without it. ``abits``:
    bits of those calibrated activation codes (default 8).
    """
    require("torch", "train", PURPOSE)
    from .model.deploy import DEFAULT_ABITS, deploy

    calibration = None if dataset is None else dataset.x_train
    return deploy(model, int(config["input_bits"]), calibration=calibration,
                  abits=DEFAULT_ABITS if abits is None else abits, constants=constants)


def _conv_spec(layer) -> art.ConvSpec | None:
    """The artifact's description of a deployed convolution (None for a fully connected layer)."""
    g = layer.conv
    if g is None:
        return None
    return art.ConvSpec(g.ifm_h, g.ifm_w, g.channels, g.kernel, g.pad, int(layer.pad_code), int(layer.pool))


def layer_data(net) -> list[LayerData]:
    """Integer LayerData of a deployed network: weight codes, thresholds in the accumulator domain, affines.

    Thresholds come out of the search in the dot domain; the engines compare
    the accumulator: XNOR layers popcount P = (dot + MW) / 2, so
    ``dot >= T <=> P >= ceil((T + MW) / 2)`` (clamped to [0, MW + 1], "always"
    .. "never"); int layers compare the dot itself. A 1-bit int threshold layer
    with 1-bit weights goes onto the XNOR lanes (:func:`binary_input_as_xnor`).
    """
    out = []
    for layer in net.layers:
        values = layer.weights.numpy()
        codes = art.weight_codes(values, layer.weight_bits, layer.weight_encoding)
        mw = values.shape[1]
        common = dict(input_bits=layer.input.bits, negated_neurons=layer.negated_neurons,
                      weight_bits=layer.weight_bits, weight_encoding=layer.weight_encoding,
                      conv=_conv_spec(layer))
        if layer.output is None:
            mul_bits = 0
            if layer.affine is not None:    # mul's own range keeps the score bound tight (LayerSpec.score_bound)
                mul = np.asarray(layer.affine)[:, 0]
                mul_bits = max(2, art.bit_length_signed(int(mul.min()), int(mul.max())))
            out.append(LayerData(layer.kind, codes, None, affine=layer.affine, affine_bits=layer.affine_bits,
                                 mul_bits=mul_bits, **common))
            continue
        t = np.asarray(layer.thresholds, dtype=np.int64)
        if layer.mac == "xnor":
            t = np.clip(-((-(t + mw)) // 2), 0, mw + 1)
        else:
            t = np.clip(t, -layer.dot_bound, layer.dot_bound + 1)
        data = LayerData(layer.kind, codes, t[:, 0] if t.shape[1] == 1 else t, **common)
        if data.kind == art.INT_THRESHOLD and data.input_bits == 1 and data.weight_bits == 1 \
                and data.weight_encoding == art.SYM:
            data = binary_input_as_xnor(data)
        out.append(data)
    return out


def deployment_data(model: torch.nn.Module, config: dict, dataset=None, abits: int | None = None) -> list[LayerData]:
    """LayerData of any quantized method's MLP (see :func:`deployed_network` and :func:`layer_data`)."""
    return layer_data(deployed_network(model, config, dataset, abits))


def export_run(run_dir: str | Path, folding_file: str | Path | None = None,
               out_dir: str | Path | None = None, generate: tuple[str, ...] = ("rtl", "hls"),
               abits: int | None = None) -> art.Artifact:
    """Export ``run_dir`` (a training run) into ``run_dir/export`` (or ``out_dir``).

    ``abits``: bits of the export-quantized real activations (BinaryConnect,
    XNOR-Net; default 8); the methods whose activations are quantized already
    ignore it. The calibration constants (activation scales, XNOR-Net's beta)
    go into the manifest's ``network.deployment`` so verify rebuilds the same
    reference.
    """
    require("torch", "train", PURPOSE)
    from .model.train import load_run

    run = Path(run_dir)
    config, model = load_run(run)
    dataset = load_dataset(config["dataset"], config.get("split_seed", 0), config["input_bits"])
    from .model.deploy import DeployError

    try:
        net = deployed_network(model, config, dataset, abits)
    except DeployError as exc:
        raise DeployError(f"{run}: {exc}") from None
    data = layer_data(net)
    shapes = [l.shape for l in data]
    channels = [l.conv.channels if l.conv else None for l in data]
    folding: list[LayerFolding] = (load_folding(folding_file) if folding_file
                                   else default_folding(shapes, channels=channels))
    network = {
        "name": run.name,
        "input_features": config["input_features"],
        "input_shape": list(config.get("input_shape", [config["input_features"]])),
        "input_bits": config["input_bits"],
        "num_classes": config["num_classes"],
        "method": config["method"],
        "dataset": config["dataset"],
        "deployment": net.constants,
    }
    # The model file's hash lets verify and the driver refuse this export once the model is retrained.
    source = {"model": "model.pt", "sha256": art.sha256_file(run / "model.pt")}
    return write_artifact(out_dir or run / "export", network, data, folding,
                          vectors=(dataset.x_test, dataset.y_test), generate=generate, source=source)
