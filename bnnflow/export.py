"""Export a trained run: fold BatchNorm + sign into integer thresholds, pack, write.

The threshold of each neuron is found with torch's own BatchNorm arithmetic
(candidate sums around the analytic crossing point are pushed through the
module), so the exported integer compare agrees with torch's float forward
pass exactly, not just up to rounding.

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
from .packing import pm1_to_bits
from .writer import LayerData, write_artifact

if TYPE_CHECKING:
    import torch


def _sum_range(kind: str, in_features: int, input_bits: int) -> tuple[int, int]:
    """Smallest and largest +-1 dot product (torch's pre-BatchNorm value) of a layer."""
    peak = in_features * ((1 << input_bits) - 1) if kind == art.INT_THRESHOLD else in_features
    return -peak, peak


#: What the torch-only steps of this module are called in a "missing torch" error.
PURPOSE = "bnnflow export (reading the trained torch model)"


def fold_batchnorm_sign(bn: torch.nn.BatchNorm1d, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer thresholds T and negation flags for ``sign(bn(s))`` over integer s in [lo, hi].

    Returns (T, negate): the output bit is ``s' >= T`` with ``s' = -s`` where
    ``negate`` (gamma < 0) and ``s' = s`` elsewhere. Constant neurons
    (gamma = 0) get T = lo (always 1) or hi + 1 (always 0), in s' terms.
    """
    torch = require("torch", "train", PURPOSE)
    with torch.no_grad():
        bn = bn.eval()
        gamma = bn.weight.double()
        beta = bn.bias.double()
        mu = bn.running_mean.double()
        std = torch.sqrt(bn.running_var.double() + bn.eps)
        mh = gamma.numel()
        with np.errstate(divide="ignore", invalid="ignore"):
            tau = (mu - beta * std / gamma).numpy()
        tau = np.where(np.isfinite(tau), np.clip(tau, lo - 3, hi + 3), 0.0)
        base = np.floor(tau).astype(np.int64)
        offsets = np.arange(-3, 4)
        candidates = base[None, :] + offsets[:, None]                      # (7, MH)
        passes = (bn(torch.from_numpy(candidates.astype(np.float32))) >= 0).numpy()

        g = gamma.numpy()
        negate = g < 0
        thresholds = np.empty(mh, dtype=np.int64)
        for n in range(mh):
            col = passes[:, n]
            if g[n] > 0:
                hit = np.flatnonzero(col)
                t = candidates[hit[0], n] if hit.size else candidates[-1, n] + 1
            elif g[n] < 0:
                hit = np.flatnonzero(col)
                t = -(candidates[hit[-1], n] if hit.size else candidates[0, n] - 1)
            else:
                t = lo if col[0] else hi + 1
            thresholds[n] = t
        # s' lies in [lo, hi] either way (the range is symmetric); clamp to "always"/"never".
        return np.clip(thresholds, lo, hi + 1), negate


def binary_input_as_xnor(layer: LayerData) -> LayerData:
    """The XNOR-popcount form of an ``int_threshold`` layer on 1-bit (0/1) inputs.

    With x in {0, 1} and weights w in {-1, +1}, the integer sum and the XNOR
    popcount P of the same bits (bit 0 read as -1) differ by a per-neuron
    constant: ``sum w*x = P - n``, n = the neuron's number of -1 weights
    (each -1 weight adds 1 to P when x = 0 and subtracts 1 from the sum when
    x = 1). So ``sum >= T <=> P >= T + n``: the same bits, weights and
    outputs, with the thresholds shifted into popcount terms. This is how
    BNN-PYNQ's LFC reads binarized pixels; it runs the first layer on the
    XNOR lanes, which cost a fraction of integer lanes (docs/PERFORMANCE.md).
    """
    if layer.kind != art.INT_THRESHOLD or layer.input_bits != 1 or layer.thresholds is None:
        raise ValueError(f"only a 1-bit int_threshold layer has an XNOR form; got {layer.kind} "
                         f"with input_bits={layer.input_bits}")
    mw = layer.weight_bits.shape[1]
    negative_weights = mw - layer.weight_bits.sum(axis=1, dtype=np.int64)
    popcount_thresholds = np.clip(np.asarray(layer.thresholds, dtype=np.int64) + negative_weights, 0, mw + 1)
    return LayerData(art.XNOR_THRESHOLD, layer.weight_bits, popcount_thresholds, input_bits=1,
                     negated_neurons=layer.negated_neurons)


def deployment_data(model: torch.nn.Module, input_bits: int) -> list[LayerData]:
    """Integer LayerData (weights as bits, thresholds in the accumulator domain) of a model."""
    if not hasattr(model, "deployment_layers"):
        raise ValueError(f"{type(model).__name__} has no hardware mapping (deployment_layers)")
    out = []
    bits = input_bits
    for layer in model.deployment_layers():
        w = layer.linear.quantized_weight().detach().numpy()            # (MH, MW) of +-1
        mh, mw = w.shape
        lo, hi = _sum_range(layer.kind, mw, bits)
        if layer.bn is None:
            out.append(LayerData(layer.kind, pm1_to_bits(w), None, input_bits=bits))
        else:
            t, negate = fold_batchnorm_sign(layer.bn, lo, hi)
            w = np.where(negate[:, None], -w, w)
            if layer.kind == art.XNOR_THRESHOLD:
                # s = 2*popcount - MW  =>  s >= T  <=>  popcount >= ceil((T + MW) / 2)
                t = -((-(t + mw)) // 2)
                t = np.clip(t, 0, mw + 1)
            data = LayerData(layer.kind, pm1_to_bits(w), t, input_bits=bits, negated_neurons=int(negate.sum()))
            out.append(binary_input_as_xnor(data) if layer.kind == art.INT_THRESHOLD and bits == 1 else data)
        bits = 1
    return out


def export_run(run_dir: str | Path, folding_file: str | Path | None = None,
               out_dir: str | Path | None = None, generate: tuple[str, ...] = ("rtl", "hls")) -> art.Artifact:
    """Export ``run_dir`` (a training run) into ``run_dir/export`` (or ``out_dir``)."""
    require("torch", "train", PURPOSE)
    from .model.train import load_run

    run = Path(run_dir)
    config, model = load_run(run)
    data = deployment_data(model, config["input_bits"])
    shapes = [(l.weight_bits.shape[1], l.weight_bits.shape[0]) for l in data]
    folding: list[LayerFolding] = load_folding(folding_file) if folding_file else default_folding(shapes)
    dataset = load_dataset(config["dataset"], config.get("split_seed", 0), config["input_bits"])
    network = {
        "name": run.name,
        "input_features": config["input_features"],
        "input_shape": list(config.get("input_shape", [config["input_features"]])),
        "input_bits": config["input_bits"],
        "num_classes": config["num_classes"],
        "method": config["method"],
        "dataset": config["dataset"],
    }
    # The model file's hash lets verify and the driver refuse this export once the model is retrained.
    source = {"model": "model.pt", "sha256": art.sha256_file(run / "model.pt")}
    return write_artifact(out_dir or run / "export", network, data, folding,
                          vectors=(dataset.x_test, dataset.y_test), generate=generate, source=source)
