"""Shift-based BatchNorm (BNN paper, Hubara et al. 2016, "Shift based Batch Normalizing Transform").

Training, per feature (per channel for 2-D inputs), with C(x) = x - mean(x):

    var   = mean(C(x) * AP2(C(x)))
    x_hat = C(x) * AP2(1 / sqrt(var + eps))
    y     = AP2(gamma) * x_hat + beta

so that every multiplication is by a power of two (a shift in hardware).
AP2 passes the gradient straight through (a deliberate choice: the paper
gives only the forward pass), so gamma keeps learning.

Evaluation uses the running mean and the running shift-variance:
y = AP2(gamma) * (x - mu) * AP2(1 / sqrt(running_var + eps)) + beta. It is
computed by ``F.batch_norm`` on an *equivalent* plain BatchNorm (weight
AP2(gamma), variance AP2(.)^-2, eps 0: all exact powers of two), so
:meth:`equivalent_batchnorm` hands the exporter a module that gives bit-for-bit
the same outputs as this one.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .quantizers import ap2, ap2_ste


class _ShiftBatchNormMixin:
    def _effective(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, running_var) of the equivalent eps-0 BatchNorm in eval mode."""
        inv = ap2(torch.rsqrt(self.running_var + self.eps))
        return ap2(self.weight.detach()), inv.pow(-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training:
            dims = [0] + list(range(2, x.dim()))
            mean = x.mean(dims)
            c = x - mean.view(shape)
            var = (c * ap2_ste(c)).mean(dims)
            x_hat = c * ap2_ste(torch.rsqrt(var + self.eps)).view(shape)
            with torch.no_grad():
                n = x.numel() / x.shape[1]
                self.num_batches_tracked += 1
                m = self.momentum
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * var.detach() * n / max(n - 1, 1))
            return ap2_ste(self.weight).view(shape) * x_hat + self.bias.view(shape)
        weight, var = self._effective()
        return F.batch_norm(x, self.running_mean, var, weight, self.bias, False, 0.0, 0.0)

    def equivalent_batchnorm(self) -> nn.Module:
        """A plain eval-mode BatchNorm (eps = 0) whose output equals this module's eval output exactly."""
        bn = (nn.BatchNorm1d if isinstance(self, nn.BatchNorm1d) else nn.BatchNorm2d)(
            self.num_features, eps=0.0)
        weight, var = self._effective()
        with torch.no_grad():
            bn.weight.copy_(weight)
            bn.bias.copy_(self.bias.detach())
            bn.running_mean.copy_(self.running_mean)
            bn.running_var.copy_(var)
        return bn.eval()


class ShiftBatchNorm1d(_ShiftBatchNormMixin, nn.BatchNorm1d):
    """Shift-based BatchNorm for (N, C) inputs; same parameters and state_dict keys as BatchNorm1d."""


class ShiftBatchNorm2d(_ShiftBatchNormMixin, nn.BatchNorm2d):
    """Shift-based BatchNorm for (N, C, H, W) inputs."""


def batchnorm(kind: str, features: int, conv: bool, momentum: float = 0.1) -> nn.Module:
    """``kind``: ``standard`` (nn.BatchNorm) or ``shift`` (shift-based)."""
    if kind == "standard":
        return (nn.BatchNorm2d if conv else nn.BatchNorm1d)(features, momentum=momentum)
    if kind == "shift":
        return (ShiftBatchNorm2d if conv else ShiftBatchNorm1d)(features, momentum=momentum)
    raise ValueError(f"unknown BatchNorm kind {kind!r}; use standard or shift")
