"""Networks that the flow trains and deploys."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from .layers import BinaryLinear
from .quantizers import ste_sign


@dataclass
class DeployLayer:
    """What the exporter needs from one matrix-vector layer of a trained model."""

    kind: str                      # artifact layer kind (int_threshold, xnor_threshold, xnor_score)
    linear: nn.Module              # has quantized_weight() -> (MH, MW) +-1 tensor
    bn: nn.BatchNorm1d | None      # folded into thresholds; None for the score layer


class BNNMLP(nn.Module):
    """BNN multilayer perceptron (Hubara et al. 2016) shaped for the hardware.

    - First layer: unsigned integer pixels times binary weights (the paper's
      bit-plane first layer: an exact integer dot product), BatchNorm, sign.
    - Hidden layers: binary activations times binary weights (XNOR-popcount
      in hardware), BatchNorm, sign.
    - Last layer: binary weights, integer scores, no BatchNorm; a learned
      positive temperature scales the scores for the loss only, so the
      prediction argmax(scores) is what the hardware computes.
    """

    def __init__(self, in_features: int, hidden: list[int], num_classes: int, bn_momentum: float = 0.1):
        super().__init__()
        if not hidden:
            raise ValueError("BNNMLP needs at least one hidden layer (--hidden 256,256)")
        sizes = [in_features] + list(hidden)
        self.linears = nn.ModuleList(BinaryLinear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.bns = nn.ModuleList(nn.BatchNorm1d(b, momentum=bn_momentum) for b in hidden)
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

    def deployment_layers(self) -> list[DeployLayer]:
        layers = [DeployLayer("int_threshold" if i == 0 else "xnor_threshold", linear, bn)
                  for i, (linear, bn) in enumerate(zip(self.linears, self.bns))]
        layers.append(DeployLayer("xnor_score", self.head, None))
        return layers


def build_model(config: dict[str, Any]) -> nn.Module:
    """Construct the network a run's config.json describes."""
    method = config["method"]
    if method == "bnn" and config.get("arch", "mlp") == "mlp":
        return BNNMLP(config["input_features"], list(config["hidden"]), config["num_classes"])
    raise ValueError(f"unknown method/architecture {method!r}/{config.get('arch')!r}")
