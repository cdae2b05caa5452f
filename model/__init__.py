"""bnnflow.model: PyTorch quantizers, quantized layers and networks for training.

The networks here expose ``deployment_layers()`` so ``bnnflow.export`` can fold
them into the integer artifact the hardware runs.
"""

from .quantizers import SignSTE, ste_sign, get_quantizer, QUANTIZERS
from .layers import QuantLinear, BinaryLinear, clip_weights
from .networks import BNNMLP, build_model

__all__ = ["SignSTE", "ste_sign", "get_quantizer", "QUANTIZERS", "QuantLinear", "BinaryLinear",
           "clip_weights", "BNNMLP", "build_model"]
