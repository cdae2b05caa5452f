"""Networks that the flow trains and deploys.

- :class:`BNNMLP`: the BNN multilayer perceptron the hardware runs (``--method bnn``
  with ``--hidden``); it has ``trace()`` and ``scores()``.
- :class:`QuantNet`: every other method/architecture, MLP or conv net from an
  ``--arch`` spec such as ``64C3-64C3-MP2-128C3-MP2-FC256``.

Both have ``deployment_chain()``: the input scale and the flat list of modules
that :mod:`bnnflow.model.deploy` turns into integer layers (MLPs and conv nets;
docs/ARTIFACT.md "Convolutions").
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
import torch.nn as nn

from .layers import BinaryLinear
from .methods import build_blocks, resolve_config
from .norm import batchnorm
from .quantizers import BinaryConnectQuantizer, Identity, SignQuantizer, ste_sign


class BNNMLP(nn.Module):
    """BNN multilayer perceptron (Hubara et al. 2016) shaped for the hardware.

    - First layer: unsigned integer pixels times binary weights (the paper's
      bit-plane first layer: an exact integer dot product), BatchNorm, sign.
    - Hidden layers: binary activations times binary weights (XNOR-popcount
      in hardware), BatchNorm, sign.
    - Last layer: binary weights, integer scores, no BatchNorm; a learned
      positive temperature scales the scores for the loss only, so the
      prediction argmax(scores) is what the hardware computes.

    ``bn = "shift"`` uses the shift-based BatchNorm; it exports exactly (the
    exporter receives its equivalent plain BatchNorm).
    """

    def __init__(self, in_features: int, hidden: list[int], num_classes: int, bn_momentum: float = 0.1,
                 bn: str = "standard"):
        super().__init__()
        if not hidden:
            raise ValueError("BNNMLP needs at least one hidden layer (--hidden 256,256)")
        sizes = [in_features] + list(hidden)
        self.linears = nn.ModuleList(BinaryLinear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.bns = nn.ModuleList(batchnorm(bn, b, conv=False, momentum=bn_momentum) for b in hidden)
        self.head = BinaryLinear(hidden[-1], num_classes)
        self.log_temperature = nn.Parameter(torch.tensor(-0.5 * math.log(hidden[-1])))

    def trace(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Pre-threshold integer sums of every layer; the last entry is the scores."""
        sums = []
        h = x
        for linear, bn in zip(self.linears, self.bns):
            s = linear(h)
            sums.append(s)
            h = ste_sign(bn(s))
        sums.append(self.head(h))
        return sums

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        return self.trace(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for the loss: scores times a positive temperature (argmax unchanged)."""
        return self.scores(x) * self.log_temperature.exp()

    def deployment_chain(self) -> tuple[float, list[nn.Module]]:
        """(input scale 1: integer pixels, [linear, bn, sign, ..., head]): what :func:`~.deploy.deploy` folds."""
        chain: list[nn.Module] = []
        for linear, bn in zip(self.linears, self.bns):
            chain += [linear, bn, SignQuantizer()]
        return 1.0, chain + [self.head]


_TOKEN = re.compile(r"^(?:(?P<cout>\d+)C(?P<k>\d+)(?P<valid>V?)|MP(?P<pool>\d+)|FC(?P<fc>\d+))$", re.IGNORECASE)


def layer_specs(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The layer list of a config: ``arch = "mlp"`` uses ``hidden``; otherwise ``arch`` is a spec.

    Spec tokens, joined by ``-``: ``NCk`` a k x k convolution with N output
    channels and "same" padding k//2, ``NCkV`` the same without padding (BNN-PYNQ's
    CNV style), ``MPk`` k x k max-pooling with stride k, ``FCn`` a fully
    connected layer of n neurons. The classifier FC is appended. Raises
    ValueError naming the token when the spec does not fit the input size.
    """
    num_classes = config["num_classes"]
    arch = config.get("arch", "mlp")
    if arch == "mlp":
        sizes = [config["input_features"]] + list(config.get("hidden", []))
        specs = [{"kind": "fc", "in": a, "out": b} for a, b in zip(sizes, sizes[1:])]
        return specs + [{"kind": "fc", "in": sizes[-1], "out": num_classes}]
    shape = list(config.get("input_shape", [config["input_features"]]))
    if len(shape) == 2:
        shape = [1] + shape
    if len(shape) != 3:
        raise ValueError(f"--arch {arch!r} has convolutions but the dataset's input shape {shape} is not an image")
    c, h, w = shape
    where = f"the {h}x{w} input of {config.get('dataset', 'the dataset')}"
    specs: list[dict[str, Any]] = []
    flat: int | None = None
    for pos, token in enumerate(arch.split("-"), 1):
        m = _TOKEN.match(token.strip())
        if not m:
            raise ValueError(f"--arch {arch!r}: cannot read token {pos} {token!r} "
                             f"(use NCk, NCkV, MPk or FCn, e.g. 64C3-64C3-MP2-128C3-MP2-FC256)")
        if m["fc"]:
            n_in = flat if flat is not None else c * h * w
            specs.append({"kind": "fc", "in": n_in, "out": int(m["fc"])})
            flat = int(m["fc"])
            continue
        if flat is not None:
            raise ValueError(f"--arch {arch!r}: token {pos} {token!r} comes after a fully connected layer")
        if m["pool"]:
            k = int(m["pool"])
            if k < 1 or h < k or w < k:
                raise ValueError(f"--arch {arch!r} does not fit {where}: token {pos} {token!r} "
                                 f"gets a {h}x{w} map, smaller than its {k}x{k} window")
            specs.append({"kind": "pool", "k": k})
            h, w = h // k, w // k
            continue
        cout, k = int(m["cout"]), int(m["k"])
        pad = 0 if m["valid"] else k // 2
        oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
        if k < 1 or cout < 1 or oh < 1 or ow < 1:
            raise ValueError(f"--arch {arch!r} does not fit {where}: token {pos} {token!r} "
                             f"gets a {h}x{w} map, smaller than its {k}x{k} kernel")
        specs.append({"kind": "conv", "in": c, "out": cout, "k": k, "pad": pad})
        c, h, w = cout, oh, ow
    n_in = flat if flat is not None else c * h * w
    return specs + [{"kind": "fc", "in": n_in, "out": num_classes}]


class QuantNet(nn.Module):
    """Any method on an MLP or a small conv net, built from the method's blocks (:mod:`.methods`).

    Inputs arrive as unsigned integer pixels; they are scaled to [0, 1] by
    1 / (2^input_bits - 1) first, except for BNN, whose first layer multiplies
    the integers themselves (the paper's bit-plane first layer).
    """

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        cfg = resolve_config(config)
        self.method = cfg["method"]
        self.arch = cfg.get("arch", "mlp")
        specs = layer_specs(cfg)
        self.image_shape = None
        if any(s["kind"] == "conv" for s in specs):
            shape = list(cfg["input_shape"])
            self.image_shape = [1] + shape if len(shape) == 2 else shape
        self.input_scale = 1.0 if self.method == "bnn" else 1.0 / ((1 << cfg.get("input_bits", 8)) - 1)
        self.body = nn.Sequential(*build_blocks(cfg, specs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.input_scale
        if self.image_shape is not None:
            x = x.reshape(x.shape[0], *self.image_shape)
        return self.body(x)

    def deployment_chain(self) -> tuple[float, list[nn.Module]]:
        """(input scale, the body's modules with each layer's input quantizer in front of the layer).

        A layer's input quantizer (XNOR-Net's sign) acts on the previous block's
        output, so it belongs to that block's level function. Conv nets keep
        their MaxPool2d and Flatten modules in place (the deployment pools the
        codes and reorders the flattened map, :mod:`.deploy`).
        """
        chain: list[nn.Module] = []
        for m in self.body:
            q = getattr(m, "input_quant", None)
            if isinstance(m, (nn.Linear, nn.Conv2d)) and q is not None and not isinstance(q, Identity):
                chain.append(q)
            chain.append(m)
        return self.input_scale, chain


def set_eval_weights(model: nn.Module, mode: str) -> None:
    """BinaryConnect evaluation mode of every BinaryConnect quantizer: ``binary`` or ``real``."""
    for m in model.modules():
        if isinstance(m, BinaryConnectQuantizer):
            m.eval_weights = mode


def eval_modes(model: nn.Module) -> list[str]:
    """Evaluation modes a model supports besides its default (BinaryConnect: binary and real weights)."""
    return ["binary", "real"] if any(isinstance(m, BinaryConnectQuantizer) for m in model.modules()) else []


def build_model(config: dict[str, Any]) -> nn.Module:
    """Construct the network a run's config.json describes (method defaults filled in for old configs)."""
    cfg = resolve_config(config)
    if cfg["method"] == "bnn" and cfg.get("arch", "mlp") == "mlp":
        return BNNMLP(cfg["input_features"], list(cfg["hidden"]), cfg["num_classes"], bn=cfg["bn"])
    return QuantNet(cfg)
