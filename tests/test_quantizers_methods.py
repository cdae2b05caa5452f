"""Each method's quantizers, BatchNorm and optimizers against the formulas of REFERENCE.md section 1.

Hand-picked inputs include the boundaries (|x| = 1, x = 0, saturation and
rounding ties); stochastic quantizers are checked statistically with a fixed
seed and, where the draw can be replayed, exactly.
"""

import math

import numpy as np
import pytest
import torch

from bnnflow.model import (BNNMLP, QuantConv2d, QuantLinear, ShiftAdaMax, ShiftBatchNorm1d, ShiftBatchNorm2d,
                           WageSGD, ap2, bitplane_linear, get_quantizer, hard_sigmoid, quantize_k,
                           stochastic_round, wage_q, wage_shift, wage_sigma)
from bnnflow.model.methods import wage_init


pytestmark = pytest.mark.usefixtures("one_thread")


def grad_of(fn, x, upstream=None):
    x = x.clone().requires_grad_(True)
    y = fn(x)
    y.backward(torch.ones_like(y) if upstream is None else upstream)
    return y.detach(), x.grad


# --------------------------------------------------------------------------- BinaryConnect

def test_hard_sigmoid_values():
    x = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    assert hard_sigmoid(x).tolist() == [0, 0, 0.25, 0.5, 0.75, 1, 1]


def test_binaryconnect_det_forward_and_identity_gradient():
    q = get_quantizer("binaryconnect")
    w = torch.tensor([-2.0, -1.0, -0.3, 0.0, 0.3, 1.0, 2.0])
    y, g = grad_of(q, w, torch.arange(1.0, 8.0))
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]          # sign(0) = +1
    assert g.tolist() == [1, 2, 3, 4, 5, 6, 7]               # gradient w.r.t. w_b applied to w unchanged


def test_binaryconnect_stochastic_probability_matches_hard_sigmoid():
    torch.manual_seed(0)
    q = get_quantizer("binaryconnect", stochastic=True).train()
    values = torch.tensor([-1.5, -1.0, -0.6, 0.0, 0.2, 0.9, 1.0])
    n = 40000
    samples = q(values[:, None].expand(-1, n).contiguous())
    assert set(samples.unique().tolist()) <= {-1.0, 1.0}
    p_hat = (samples > 0).double().mean(1)
    p = hard_sigmoid(values).double()
    sd = torch.sqrt(p * (1 - p) / n).clamp(min=1e-12)
    assert torch.all((p_hat - p).abs() <= 4 * sd + 1e-12), (p_hat, p)
    assert p_hat[0] == 0 and p_hat[1] == 0 and p_hat[-1] == 1   # saturated ends are deterministic


def test_binaryconnect_eval_modes():
    q = get_quantizer("binaryconnect", stochastic=True)
    w = torch.tensor([-0.4, 0.0, 0.7])
    q.eval()
    assert q(w).tolist() == [-1, 1, 1]                      # binary: the deterministic sign
    q.eval_weights = "real"
    assert torch.equal(q(w), w)
    q.train()                                               # training always binarizes
    assert set(q(w).abs().tolist()) == {1.0}


# --------------------------------------------------------------------------- BNN

def test_bitplane_first_layer_equals_integer_dot_product():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 32, (20, 64), generator=g).float()            # 5-bit pixels
    w = torch.where(torch.rand(7, 64, generator=g) < 0.5, -1.0, 1.0)
    assert torch.equal(bitplane_linear(x, w, 5), (x.double() @ w.double().T))
    model = BNNMLP(64, [7], 10)
    with torch.no_grad():
        model.linears[0].weight.copy_(w * 0.3)
    assert torch.equal(model.trace(x)[0].double(), bitplane_linear(x, w, 5))


def test_ap2_values():
    x = torch.tensor([3.0, -3.0, 0.3, 0.0, 1.0, 0.7, -0.126, 1024.0])
    assert ap2(x).tolist() == [4, -4, 0.25, 0, 1, 0.5, -0.125, 1024]


def _shift_bn_reference(x, gamma, beta, eps):
    dims = [0] + list(range(2, x.dim()))
    shape = [1, -1] + [1] * (x.dim() - 2)
    mean = x.mean(dims)
    c = x - mean.view(shape)
    var = (c * ap2(c)).mean(dims)
    x_hat = c * ap2(1 / torch.sqrt(var + eps)).view(shape)
    return ap2(gamma).view(shape) * x_hat + beta.view(shape), mean, var


@pytest.mark.parametrize("cls,shape", [(ShiftBatchNorm1d, (16, 5)), (ShiftBatchNorm2d, (6, 5, 3, 3))])
def test_shift_batchnorm_matches_definition(cls, shape):
    torch.manual_seed(2)
    bn = cls(5, momentum=0.25)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.3, -1.7, 1.0, 2.5, 0.0]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.0, 0.5, 1.0]))
    x = torch.randn(*shape) * 3 + 1
    y = bn(x)
    expected, mean, var = _shift_bn_reference(x, bn.weight.detach(), bn.bias.detach(), bn.eps)
    assert torch.allclose(y, expected, rtol=1e-6, atol=1e-6)
    n = x.numel() / x.shape[1]
    assert torch.allclose(bn.running_mean, 0.25 * mean)
    assert torch.allclose(bn.running_var, 0.75 + 0.25 * var * n / (n - 1))
    # the products are by powers of two only
    scale = ap2(1 / torch.sqrt(var + bn.eps))
    assert torch.equal(torch.log2(scale), torch.round(torch.log2(scale)))
    # gamma and beta learn (AP2 passes the gradient straight through)
    y.sum().backward()
    assert bn.weight.grad is not None and bn.weight.grad.abs().sum() > 0
    # eval: running statistics, and the equivalent plain BatchNorm gives identical outputs
    bn.eval()
    with torch.no_grad():
        out = bn(x)
        shape_ = [1, -1] + [1] * (x.dim() - 2)
        ref = ap2(bn.weight).view(shape_) * (x - bn.running_mean.view(shape_)) \
            * ap2(1 / torch.sqrt(bn.running_var + bn.eps)).view(shape_) + bn.bias.view(shape_)
        assert torch.allclose(out, ref, rtol=1e-6, atol=1e-6)
        assert torch.equal(bn.equivalent_batchnorm()(x), out)


def test_shift_adamax_matches_definition():
    torch.manual_seed(3)
    p = torch.nn.Parameter(torch.randn(50))
    ref = p.detach().clone().double()
    opt = ShiftAdaMax([p], lr=2 ** -6)
    b1, b2 = 1 - 2 ** -3, 1 - 2 ** -10
    m = torch.zeros(50, dtype=torch.float64)
    v = torch.zeros(50, dtype=torch.float64)
    grads = [torch.randn(50) * s for s in (1.0, 0.01, 3.0, 0.5)]
    grads[1][:5] = 0.0
    for t, g in enumerate(grads, 1):
        p.grad = g.clone()
        opt.step()
        gd = g.double()
        m = b1 * m + (1 - b1) * gd
        v = torch.maximum(b2 * v, gd.abs())
        step = 2.0 ** round(math.log2(2 ** -6 / (1 - b1 ** t)))   # AP2 of the bias-corrected step
        ref = ref - step * m / (ap2(v) + 1e-8)
        assert torch.allclose(p.detach().double(), ref, rtol=1e-5, atol=1e-7), t
    assert opt.defaults["lr"] == 2 ** -6
    assert ShiftAdaMax([torch.nn.Parameter(torch.zeros(1))]).defaults["betas"] == (1 - 2 ** -3, 1 - 2 ** -10)


# --------------------------------------------------------------------------- XNOR-Net

def test_xnor_weight_forward_and_paper_gradient():
    w = torch.tensor([[0.5, -1.0, 1.5, 0.0], [-2.0, 0.2, -0.2, 1.0]])
    y, g = grad_of(get_quantizer("xnor_weight"), w)
    alpha = torch.tensor([[0.75], [0.85]])
    assert torch.allclose(y, alpha * torch.tensor([[1, -1, 1, 1], [-1, 1, -1, 1.0]]))
    inside = (w.abs() <= 1).float()                        # |W| = 1 counts as inside
    assert torch.allclose(g, 1 / 4 + alpha * inside)


def test_xnor_sign_gradient_zero_from_abs_one():
    y, g = grad_of(get_quantizer("xnor_sign"), torch.tensor([-1.5, -1.0, -0.99, 0.0, 0.99, 1.0, 2.0]))
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]
    assert g.tolist() == [0, 0, 1, 1, 1, 0, 0]


def test_xnor_linear_beta_scaling():
    layer = QuantLinear(3, 2, weight_quant="xnor_weight", input_quant="xnor_sign", input_scaling=True)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.5, 1.0], [-0.2, -0.4, 0.6]]))
    x = torch.tensor([[1.0, -2.0, 0.5], [-0.3, 0.0, 0.3]])
    beta = x.abs().mean(1, keepdim=True)
    alpha = torch.tensor([2 / 3, 0.4])
    expected = (torch.sign(x + (x == 0)) @ torch.sign(layer.weight.detach()).T) * alpha * beta
    assert torch.allclose(layer(x), expected)


def test_xnor_conv_k_map():
    torch.manual_seed(4)
    conv = QuantConv2d(2, 3, 3, padding=1, weight_quant="xnor_weight", input_quant="xnor_sign",
                       input_scaling=True)
    x = torch.randn(1, 2, 4, 4)
    out = conv(x)
    a = torch.nn.functional.pad(x.abs().mean(1)[0], (1, 1, 1, 1))     # A, zero padded
    k = torch.stack([torch.stack([a[i:i + 3, j:j + 3].sum() / 9 for j in range(4)]) for i in range(4)])
    plain = torch.nn.functional.conv2d(torch.where(x >= 0, 1.0, -1.0), conv.quantized_weight(), padding=1)
    assert torch.allclose(out, plain * k, atol=1e-6)


# --------------------------------------------------------------------------- DoReFa

def test_quantize_k_values_ties_and_ste():
    r = torch.tensor([0.0, 1 / 6, 0.17, 0.5, 0.8, 1.0])
    y, g = grad_of(lambda t: quantize_k(t, 2), r)
    assert torch.allclose(y, torch.tensor([0, 0, 1 / 3, 2 / 3, 2 / 3, 1]))    # round(0.5) = 0, round(1.5) = 2
    assert g.tolist() == [1] * 6


def test_dorefa_weight_one_bit_mean_scaling():
    w = torch.tensor([0.5, -0.25, 0.0, -1.25])
    y, g = grad_of(get_quantizer("dorefa_weight", bits=1), w)
    assert y.tolist() == [0.5, -0.5, 0.5, -0.5]             # E = mean|w| = 0.5
    assert g.tolist() == [1, 1, 1, 1]


def test_dorefa_weight_k_bits_tanh_formula():
    w = torch.tensor([-2.0, -0.4, 0.0, 0.1, 0.7, 1.5])
    y, g = grad_of(get_quantizer("dorefa_weight", bits=2), w)
    t = np.tanh(w.numpy().astype(np.float64))
    r = t / (2 * np.abs(t).max()) + 0.5
    assert np.allclose(y.numpy(), 2 * np.round(3 * r) / 3 - 1, atol=1e-6)
    assert set(np.round(y.numpy() * 3).astype(int).tolist()) <= {-3, -1, 1, 3}
    # straight through round: the gradient is that of 2r - 1 = tanh(w) / max|tanh(w)|
    _, g_ref = grad_of(lambda v: torch.tanh(v) / torch.tanh(v).abs().max(), w)
    assert torch.allclose(g, g_ref)
    assert torch.equal(get_quantizer("dorefa_weight", bits=32)(w), w)


def test_dorefa_activation_clip_and_quantize():
    a = torch.tensor([-0.5, 0.0, 0.2, 0.5, 0.9, 1.0, 1.5])
    y, g = grad_of(get_quantizer("dorefa_act", bits=2), a)
    assert torch.allclose(y, torch.tensor([0, 0, 1 / 3, 2 / 3, 1, 1, 1]))
    assert g.tolist() == [0, 1, 1, 1, 1, 1, 0]               # clip keeps its gradient, inclusive bounds
    assert get_quantizer("dorefa_act", bits=1)(a).tolist() == [0, 0, 0, 0, 1, 1, 1]


def test_dorefa_gradient_quantization_exact_replay():
    q = get_quantizer("dorefa_grad", bits=2)
    x = torch.zeros(2, 4, requires_grad=True)
    g = torch.tensor([[0.4, -0.2, 0.1, 0.0], [-3.0, 1.5, 0.75, 3.0]])
    torch.manual_seed(11)
    q(x).backward(g)
    torch.manual_seed(11)
    noise = (torch.rand(2, 4) - 0.5) / 3
    m = g.abs().amax(1, keepdim=True)                       # per sample
    expected = 2 * m * (torch.round((g / (2 * m) + 0.5 + noise) * 3) / 3 - 0.5)
    assert torch.allclose(x.grad, expected)
    levels = (x.grad / (2 * m) + 0.5) * 3
    assert torch.allclose(levels, torch.round(levels), atol=1e-5)   # on the 2-bit grid
    assert torch.equal(q(g), g)                             # identity forward


def test_dorefa_gradient_quantization_is_unbiased():
    torch.manual_seed(5)
    q = get_quantizer("dorefa_grad", bits=2)
    g = torch.tensor([[0.3, -0.1, 0.05, -0.6]]).expand(20000, -1).contiguous()
    x = torch.zeros_like(g, requires_grad=True)
    q(x).backward(g)
    assert torch.allclose(x.grad.mean(0), g[0], atol=0.01)


# --------------------------------------------------------------------------- WAGE

def test_wage_sigma_q_and_shift_exact():
    assert wage_sigma(2) == 0.5 and wage_sigma(8) == 1 / 128
    x = torch.tensor([-1.0, -0.3, -0.25, 0.0, 0.24, 0.25, 0.26, 0.74, 0.75, 1.0])
    assert wage_q(x, 2).tolist() == [-0.5, -0.5, 0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5]   # ternary, ties to even
    y = torch.tensor([0.3, -0.999, 0.99, 1 / 256, 3 / 256])
    assert wage_q(y, 8).tolist() == [38 / 128, -127 / 128, 127 / 128, 0, 2 / 128]
    s = torch.tensor([1.0, 1.4, 1.5, 3.0, 0.3, 0.75, 0.7, 6.0])   # log2: 0, .49, .58, 1.58, -1.74, -.42, -.51, 2.58
    assert wage_shift(s).tolist() == [1, 1, 2, 4, 0.25, 1, 0.5, 8]


def test_stochastic_round_exact_and_unbiased():
    x = torch.tensor([2.3, -2.3, 1.0, -0.7, 0.0, 0.5])
    u = torch.tensor([0.2, 0.5, 0.99, 0.69, 0.1, 0.5])
    assert stochastic_round(x, u).tolist() == [3, -2, 1, -1, 0, 0]
    g = torch.Generator().manual_seed(6)
    r = stochastic_round(torch.full((100000,), -1.3), generator=g)
    assert set(r.unique().tolist()) == {-1.0, -2.0}
    assert abs(r.mean().item() + 1.3) < 0.01


def test_wage_weight_and_activation_gradients():
    w = torch.tensor([-1.0, -0.3, 0.2, 0.26, 0.9])
    y, g = grad_of(get_quantizer("wage_weight", bits=2), w)
    assert y.tolist() == [-0.5, -0.5, 0, 0.5, 0.5]
    assert g.tolist() == [1] * 5                            # straight through round and clip
    s = 1 / 128
    a = torch.tensor([-2.0, -1 + s, -0.3, 0.0, 0.5, 1 - s, 0.995, 3.0])
    y, g = grad_of(get_quantizer("wage_act", bits=8), a)
    assert torch.equal(y, wage_q(a, 8))
    assert g.tolist() == [0, 1, 1, 1, 1, 1, 0, 0]           # the clip keeps its gradient


def test_wage_error_quantization_exact():
    x = torch.zeros(3, requires_grad=True)
    get_quantizer("wage_error", bits=8)(x).backward(torch.tensor([0.3, -0.1, 0.05]))
    # Shift(max|e|) = Shift(0.3) = 0.25; e / 0.25 = [1.2, -0.4, 0.2] -> Q(., 8)
    assert x.grad.tolist() == [127 / 128, -51 / 128, 26 / 128]


def test_wage_sgd_update_exact():
    p = torch.nn.Parameter(torch.tensor([0.5, -0.25, 0.0, 0.9921875, -0.9921875]))
    grad = torch.tensor([0.003, -0.0011, 0.0004, -0.004, 0.004])
    p.grad = grad.clone()
    opt = WageSGD([p], lr=8.0, bits=8, generator=torch.Generator().manual_seed(7))
    before = p.detach().clone()
    opt.step()
    g_s = 8.0 * grad / 0.00390625                            # Shift(0.004) = 2^-8
    u = torch.rand(5, generator=torch.Generator().manual_seed(7))
    expected = torch.clamp(before - stochastic_round(g_s, u) / 128, -127 / 128, 127 / 128)
    assert torch.equal(p.detach(), expected)
    assert torch.equal(p.detach() * 128, torch.round(p.detach() * 128))   # stays on the k_G grid


def test_wage_init_alpha_and_grid():
    torch.manual_seed(8)
    layer = QuantLinear(64, 100)
    alpha = wage_init(layer, kw=2, kg=8)
    assert alpha == 2.0                                      # Shift(0.75 / sqrt(6/64)) = Shift(2.45) = 2
    assert layer.weight.abs().max() <= 0.75
    assert torch.equal(layer.weight * 128, torch.round(layer.weight * 128))
    big = QuantLinear(4, 3)
    assert wage_init(big, kw=2, kg=8) == 1.0                 # sqrt(6/4) > L_min: alpha stays 1


# --------------------------------------------------------------------------- registry

def test_registry_and_bit_range_errors():
    assert get_quantizer("dorefa_weight", bits=3).bits == 3
    assert get_quantizer("ste_sign").bits == 1
    with pytest.raises(ValueError, match="unknown quantizer 'nope'"):
        get_quantizer("nope")
    for name, bits in [("dorefa_weight", 0), ("dorefa_act", 17), ("dorefa_grad", 33),
                       ("wage_weight", 1), ("wage_act", 32), ("wage_error", 0)]:
        with pytest.raises(ValueError, match="out of range"):
            get_quantizer(name, bits=bits)
