"""The training methods: their defaults, which options apply, and the layer blocks each builds.

``resolve_config(config)`` fills a run config's method-specific fields with the
method's defaults and rejects options that do not apply (or are out of range)
with a clear message; ``build_blocks`` turns a layer list into the method's
modules. The table in docs/TRAINING.md mirrors :data:`METHODS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from .layers import QuantConv2d, QuantLinear
from .norm import batchnorm
from .quantizers import (BinaryConnectQuantizer, DorefaActQuantizer, DorefaGradQuantizer,
                         DorefaWeightQuantizer, SignQuantizer, WageActQuantizer, WageErrorQuantizer,
                         WageWeightQuantizer, XnorSignQuantizer, XnorWeightQuantizer, wage_q, wage_shift,
                         wage_sigma)


@dataclass(frozen=True)
class Method:
    summary: str
    defaults: dict[str, Any]
    variants: tuple[str, ...] = ()
    bits: tuple[str, ...] = ()          # which of wbits/abits/gbits/ebits apply
    first_last: bool = False            # --first-layer/--last-layer apply
    extra: dict[str, Any] = field(default_factory=dict)


_COMMON = dict(bn="standard", optim="adam", loss="ce", lr_scale="none", schedule="cosine")

METHODS: dict[str, Method] = {
    "float": Method(
        "float baseline: the same topology with real weights and activations (BN + ReLU)",
        dict(_COMMON, lr=0.003)),
    "binaryconnect": Method(
        "BinaryConnect: binary weights (det sign or stochastic hard-sigmoid), real ReLU activations, "
        "BN after every layer, Glorot LR scaling, squared hinge loss",
        dict(_COMMON, variant="det", lr=0.01, loss="sqhinge", lr_scale="glorot"),
        variants=("det", "stoch")),
    "bnn": Method(
        "BNN: sign weights and activations with the saturated STE, integer first layer, "
        "optional shift-based BN (--bn shift) and AdaMax (--optim shift-adamax)",
        dict(_COMMON, lr=0.01)),
    "xnor": Method(
        "XNOR-Net: alpha*sign weights, sign inputs with beta/K scaling (variant xnor) or real inputs "
        "(variant bwn); BN -> sign -> binary layer -> ReLU -> pool; first/last layers real",
        dict(_COMMON, variant="xnor", lr=0.01, first_layer="real", last_layer="real"),
        variants=("xnor", "bwn"), first_last=True),
    "dorefa": Method(
        "DoReFa-Net: k-bit weights (tanh / mean-|w|), k-bit activations, k-bit gradients with noise; "
        "first/last layers real",
        dict(_COMMON, lr=0.01, wbits=1, abits=2, gbits=32, first_layer="real", last_layer="real"),
        bits=("wbits", "abits", "gbits"), first_last=True),
    "wage": Method(
        "WAGE: integer W-A-G-E (2-8-8-8), Q/Shift, per-layer alpha, quantized errors and gradients with "
        "stochastic rounding, no BN, SSE loss, plain SGD with a power-of-two LR schedule",
        dict(bn="none", optim="wage-sgd", loss="sse", lr_scale="none", schedule="pow2", lr=8.0,
             wbits=2, abits=8, gbits=8, ebits=8),
        bits=("wbits", "abits", "gbits", "ebits")),
}

OPTION_CHOICES = {
    "bn": ("standard", "shift"),
    "optim": ("adam", "shift-adamax", "sgd", "wage-sgd"),
    "loss": ("ce", "sqhinge", "sse"),
    "lr_scale": ("none", "glorot"),
    "schedule": ("cosine", "pow2"),
    "first_layer": ("real", "quant"),
    "last_layer": ("real", "quant"),
}
ALL_BITS = ("wbits", "abits", "gbits", "ebits")


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with the method's defaults filled in; ValueError on options that do not apply."""
    cfg = dict(config)
    name = cfg.get("method")
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    method = METHODS[name]
    for key in ("variant",) + ALL_BITS + ("first_layer", "last_layer"):
        given = cfg.get(key)
        if given is None:
            continue
        applies = ((key == "variant" and method.variants) or (key in method.bits)
                   or (key in ("first_layer", "last_layer") and method.first_last))
        if not applies and given != method.defaults.get(key):
            raise ValueError(f"{_flag(key)} does not apply to --method {name}")
    for key, value in method.defaults.items():
        if cfg.get(key) is None:
            cfg[key] = value
    cfg = {k: v for k, v in cfg.items() if v is not None}   # options that do not apply are left out
    if method.variants and cfg["variant"] not in method.variants:
        raise ValueError(f"--method {name}: unknown variant {cfg['variant']!r}; use {' or '.join(method.variants)}")
    for key, choices in OPTION_CHOICES.items():
        if key in cfg and cfg[key] not in choices and not (key == "bn" and cfg[key] == "none" and name == "wage"):
            raise ValueError(f"unknown {_flag(key)} {cfg[key]!r}; use {', '.join(choices)}")
    if name == "wage":
        if cfg["bn"] != "none":
            raise ValueError("--bn does not apply to --method wage (WAGE uses no BatchNorm)")
        if cfg["optim"] != "wage-sgd":
            raise ValueError("--method wage trains with its own quantized SGD (--optim wage-sgd)")
        if cfg["lr_scale"] != "none":
            raise ValueError("--lr-scale does not apply to --method wage")
    elif cfg["optim"] == "wage-sgd":
        raise ValueError("--optim wage-sgd needs --method wage (weights on the WAGE grid)")
    # bit widths: DoReFa 1..16 or 32 (= no quantization); WAGE 2..16
    for key in method.bits:
        k = cfg[key]
        is_int = isinstance(k, int) and not isinstance(k, bool)
        ok = (is_int and (1 <= k <= 16 or k == 32)) if name == "dorefa" else (is_int and 2 <= k <= 16)
        if not ok:
            rng = "1..16, or 32 for no quantization" if name == "dorefa" else "2..16"
            raise ValueError(f"{_flag(key)} {k!r} out of range for --method {name}: use {rng}")
    lr = cfg.get("lr")
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"--lr must be a positive finite number, got {lr!r}")
    return cfg


def bits_label(cfg: dict[str, Any]) -> str:
    """Short setting label: W1A2G32, 2-8-8-8, det, xnor ..."""
    if cfg["method"] == "dorefa":
        return f"W{cfg['wbits']}A{cfg['abits']}G{cfg['gbits']}"
    if cfg["method"] == "wage":
        return f"{cfg['wbits']}-{cfg['abits']}-{cfg['gbits']}-{cfg['ebits']}"
    if cfg["method"] == "bnn":
        extra = [x for x in (cfg["bn"] == "shift" and "shift-BN", cfg["optim"] == "shift-adamax" and "shift-AdaMax")
                 if x]
        return "W1A1" + (" " + "+".join(extra) if extra else "")
    if cfg["method"] == "float":
        return "W32A32"
    return cfg.get("variant") or ""


# ---------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------


#: A convolution on sign (+-1) inputs pads with +1: 0 is not a value of its inputs (QuantConv2d.pad_value).
SIGN_PADDING = {"pad_value": 1.0}


def _layer(spec: dict, n_in: int, n_out: int, pad_value: float = 0.0, **kw) -> nn.Module:
    if spec["kind"] == "conv":
        return QuantConv2d(n_in, n_out, spec["k"], padding=spec["pad"], pad_value=pad_value, **kw)
    return QuantLinear(n_in, n_out, **kw)


@torch.no_grad()
def wage_init(layer: nn.Module, kw: int, kg: int) -> float:
    """WAGE weight initialisation (sec. 3.3, "weight initialization"); returns the layer's alpha.

    L0 = sqrt(6 / n_in) (He-uniform), L_min = 1.5 * sigma(k_W), W ~ U(-L, L) with
    L = max(L0, L_min), alpha = max(Shift(L_min / L0), 1). alpha uses the
    unclamped L0 (with the clamped L it would always be 1), as the authors'
    code does. The initial W is rounded onto the sigma(k_G) grid (our choice),
    so the integer updates of WageSGD keep it there.
    """
    fan_in = layer.fans()[0]
    l0 = math.sqrt(6.0 / fan_in)
    l_min = 1.5 * wage_sigma(kw)
    bound = max(l0, l_min)
    layer.weight.uniform_(-bound, bound)
    layer.weight.copy_(wage_q(layer.weight, kg))
    return max(float(wage_shift(l_min / l0)), 1.0)


def build_blocks(cfg: dict[str, Any], specs: list[dict]) -> list[nn.Module]:
    """The method's modules for ``specs`` in order.

    ``specs`` come from :func:`bnnflow.model.networks.layer_specs`: dicts with
    ``kind`` (conv / pool / fc), ``in`` (input channels or features), ``out``,
    ``k`` and ``pad``; the last one is the classifier. A Flatten goes in front
    of the first fc that follows a conv.
    """
    method = cfg["method"]
    bn_kind = cfg.get("bn", "standard")
    weighted = [i for i, s in enumerate(specs) if s["kind"] != "pool"]
    modules: list[nn.Module] = []
    spatial = False
    for i, spec in enumerate(specs):
        if spec["kind"] == "pool":
            modules.append(nn.MaxPool2d(spec["k"]))
            continue
        conv = spec["kind"] == "conv"
        if conv:
            spatial = True
        elif spatial:
            modules.append(nn.Flatten())
            spatial = False
        position = "first" if i == weighted[0] else ("last" if i == weighted[-1] else "hidden")
        modules.extend(_method_block(method, cfg, spec, spec["in"], spec["out"], position, conv, bn_kind))
    return modules


def _method_block(method: str, cfg: dict, spec: dict, n_in: int, n_out: int, position: str,
                  conv: bool, bn_kind: str) -> list[nn.Module]:
    last = position == "last"
    first = position == "first"

    def bn(n):
        return batchnorm(bn_kind, n, conv)

    if method == "float":
        if last:
            return [_layer(spec, n_in, n_out, bias=True)]
        return [_layer(spec, n_in, n_out), bn(n_out), nn.ReLU()]

    if method == "binaryconnect":
        wq = BinaryConnectQuantizer(stochastic=cfg["variant"] == "stoch",
                                    eval_weights="real" if cfg["variant"] == "stoch" else "binary")
        block = [_layer(spec, n_in, n_out, weight_quant=wq, weight_clip=1.0), bn(n_out)]
        return block if last else block + [nn.ReLU()]

    if method == "bnn":
        # sign of the previous block's BN output is this layer's input quantizer; the first
        # layer multiplies the raw integer pixels (the paper's bit-plane first layer).
        layer = _layer(spec, n_in, n_out, weight_quant=SignQuantizer(),
                       input_quant=None if first else SignQuantizer(), weight_clip=1.0,
                       **({} if first else SIGN_PADDING))
        return [layer, bn(n_out)]

    if method == "xnor":
        quant = not ((first and cfg["first_layer"] == "real") or (last and cfg["last_layer"] == "real"))
        if not quant:
            return [_layer(spec, n_in, n_out, bias=True)] if last else \
                   [_layer(spec, n_in, n_out), bn(n_out), nn.ReLU()]
        xnor = cfg["variant"] == "xnor"
        layer = _layer(spec, n_in, n_out, weight_quant=XnorWeightQuantizer(),
                       input_quant=XnorSignQuantizer() if xnor else None, input_scaling=xnor,
                       **(SIGN_PADDING if xnor else {}))
        # the XNOR-Net block order: BN -> BinActiv (in the layer) -> BinConv -> ReLU (-> pool)
        return [bn(n_in), layer] if last else [bn(n_in), layer, nn.ReLU()]

    if method == "dorefa":
        quant = not ((first and cfg["first_layer"] == "real") or (last and cfg["last_layer"] == "real"))
        if quant:
            layer = _layer(spec, n_in, n_out, weight_quant=DorefaWeightQuantizer(cfg["wbits"]),
                           output_quant=DorefaGradQuantizer(cfg["gbits"]))
        else:
            layer = _layer(spec, n_in, n_out, bias=last)
        if last:
            return [layer]
        return [layer, bn(n_out), DorefaActQuantizer(cfg["abits"])]

    if method == "wage":
        layer = _layer(spec, n_in, n_out, weight_quant=WageWeightQuantizer(cfg["wbits"]))
        alpha = wage_init(layer, cfg["wbits"], cfg["gbits"])
        layer.output_scale = 1.0 / alpha
        if last:
            return [layer, WageErrorQuantizer(cfg["ebits"])]
        return [layer, nn.ReLU(), WageErrorQuantizer(cfg["ebits"]), WageActQuantizer(cfg["abits"])]

    raise ValueError(f"unknown method {method!r}")
