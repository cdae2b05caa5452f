"""Quantizer forward values and backward gradients on hand-picked inputs."""

import pytest
import torch

from bnnflow.model import BinaryLinear, clip_weights, get_quantizer, ste_sign


def test_sign_forward_boundaries():
    x = torch.tensor([-2.0, -1.0, -0.5, -1e-7, 0.0, 1e-7, 0.5, 1.0, 2.0])
    assert ste_sign(x).tolist() == [-1, -1, -1, -1, 1, 1, 1, 1, 1]   # sign(0) = +1


def test_sign_saturated_ste_gradient():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0001, 3.0], requires_grad=True)
    upstream = torch.arange(1.0, 9.0)
    ste_sign(x).backward(upstream)
    # gradient passes where |x| <= 1 (inclusive), is zero where saturated
    assert x.grad.tolist() == [0, 2, 3, 4, 5, 6, 0, 0]


def test_binary_linear_uses_binarized_weights_and_clips():
    torch.manual_seed(0)
    layer = BinaryLinear(5, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.3, -0.2, 0.0, 2.0, -5.0]] * 3))
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    assert layer(x).tolist() == [[1 - 2 + 3 + 4 - 5] * 3]
    clip_weights(layer)
    assert layer.weight[0].tolist() == pytest.approx([0.3, -0.2, 0.0, 1.0, -1.0])
    # gradient reaches latent weights inside the STE window only
    layer.weight.grad = None
    layer(x).sum().backward()
    assert layer.weight.grad[0].tolist() == pytest.approx([1, 2, 3, 4, 5])


def test_unknown_quantizer_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown quantizer 'nope'"):
        get_quantizer("nope")
