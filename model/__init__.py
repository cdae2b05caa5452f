"""bnnflow.model: PyTorch quantizers, quantized layers, optimizers and networks for training.

The five classic methods (BinaryConnect, BNN, XNOR-Net, DoReFa-Net, WAGE) plus
a float baseline; see docs/TRAINING.md. Every network exposes
``deployment_chain()`` (its flat module chain), from which
:mod:`bnnflow.model.deploy` builds the integer layers the hardware runs and
the quantized torch reference they are verified against (docs/DEPLOY.md).

Everything here is PyTorch: without torch (the ``train`` extra, e.g. on a
PYNQ board) importing this package raises one clear
:class:`~bnnflow.extras.MissingExtraError` instead of a bare ImportError.
"""

from ..extras import require

require("torch", "train", "bnnflow.model (training, and reading a trained run)")

from .quantizers import (QUANTIZERS, SignSTE, Quantizer, ap2, get_quantizer, hard_sigmoid, quantize_k,
                         ste_sign, stochastic_round, wage_q, wage_shift, wage_sigma)
from .layers import BinaryLinear, QuantConv2d, QuantLinear, bitplane_linear, clip_weights, summary
from .norm import ShiftBatchNorm1d, ShiftBatchNorm2d
from .optim import ShiftAdaMax, WageSGD
from .methods import METHODS, resolve_config
from .networks import BNNMLP, QuantNet, build_model, layer_specs

__all__ = ["QUANTIZERS", "SignSTE", "Quantizer", "ap2", "get_quantizer", "hard_sigmoid", "quantize_k",
           "ste_sign", "stochastic_round", "wage_q", "wage_shift", "wage_sigma",
           "BinaryLinear", "QuantConv2d", "QuantLinear", "bitplane_linear", "clip_weights", "summary",
           "ShiftBatchNorm1d", "ShiftBatchNorm2d", "ShiftAdaMax", "WageSGD", "METHODS", "resolve_config",
           "BNNMLP", "QuantNet", "build_model", "layer_specs"]
