"""Convolution and max-pool geometry and their integer reference (docs/ARTIFACT.md, "Convolutions").

A convolution runs on the matrix-vector unit, one output pixel at a time:
the sliding-window unit turns the input feature map into one im2col vector
per output pixel, and the unit's MW inputs are that vector. This module
defines, once, everything the levels must agree on:

* Feature maps stream pixel by pixel in row-major order (y, then x), the
  channels of one pixel together ("NHWC"); numpy arrays here are
  (N, H, W, C) integer codes.
* An im2col vector lists the K x K window row-major, the channels of one
  window position together: element ``(ky * K + kx) * C + c`` is channel
  ``c`` of input pixel ``(oy + ky - pad, ox + kx - pad)`` (FINN's order; a
  word of SIMD elements then holds SIMD channels of one window position).
* Window positions outside the map read ``pad_code``: the input code whose
  value the trained model pads with (0 for unsigned codes, the zero point
  for offset codes, the +1 code for +-1 inputs, where zero has no code).
* Max-pool takes k x k windows with stride k and drops the rows and columns
  that do not fill a window (``torch.nn.MaxPool2d(k)``). It compares the
  codes: on 1-bit maps it is an OR; it equals the pool of the values because
  every code maps to its value by an increasing function.

The golden model, the sliding-window and max-pool units (RTL and HLS) and
their tests all use these functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConvGeometry:
    """A k x k, stride-1 convolution over an ``ifm_h`` x ``ifm_w`` x ``channels`` map, ``pad`` on every side."""

    ifm_h: int
    ifm_w: int
    channels: int
    kernel: int
    pad: int = 0

    def __post_init__(self) -> None:
        for name in ("ifm_h", "ifm_w", "channels", "kernel"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"convolution: {name} must be a positive integer, got {value!r}")
        if isinstance(self.pad, bool) or not isinstance(self.pad, int) or not 0 <= self.pad < self.kernel:
            raise ValueError(f"convolution: pad must be an integer in 0..kernel-1 = {self.kernel - 1}, got {self.pad!r}")
        if self.ofm_h < 1 or self.ofm_w < 1:
            raise ValueError(f"convolution: a {self.kernel}x{self.kernel} kernel with pad {self.pad} does not fit "
                             f"the {self.ifm_h}x{self.ifm_w} input map")

    @property
    def ofm_h(self) -> int:
        return self.ifm_h + 2 * self.pad - self.kernel + 1

    @property
    def ofm_w(self) -> int:
        return self.ifm_w + 2 * self.pad - self.kernel + 1

    @property
    def vector_length(self) -> int:
        """Elements of one im2col vector: the matrix-vector unit's MW."""
        return self.kernel * self.kernel * self.channels

    @property
    def output_pixels(self) -> int:
        return self.ofm_h * self.ofm_w

    def stream_words(self, simd: int) -> tuple[int, int]:
        """(input words, output words) of one image through the sliding window at ``simd`` channels per word:
        the map's pixels, and K*K words per output pixel (its im2col vector), times the channel folds."""
        folds = channel_folds(self.channels, simd, "SIMD")
        return self.ifm_h * self.ifm_w * folds, self.output_pixels * self.kernel * self.kernel * folds


@dataclass(frozen=True)
class PoolGeometry:
    """k x k max-pool with stride k over an ``ifm_h`` x ``ifm_w`` x ``channels`` map."""

    ifm_h: int
    ifm_w: int
    channels: int
    pool: int

    def __post_init__(self) -> None:
        for name in ("ifm_h", "ifm_w", "channels", "pool"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"max-pool: {name} must be a positive integer, got {value!r}")
        if self.pool > self.ifm_h or self.pool > self.ifm_w:
            raise ValueError(f"max-pool: a {self.pool}x{self.pool} window does not fit the "
                             f"{self.ifm_h}x{self.ifm_w} input map")

    @property
    def ofm_h(self) -> int:
        return self.ifm_h // self.pool

    @property
    def ofm_w(self) -> int:
        return self.ifm_w // self.pool

    def stream_words(self, pe: int) -> tuple[int, int]:
        """(input words, output words) of one image through the max-pool at ``pe`` channels per word."""
        folds = channel_folds(self.channels, pe, "PE")
        return self.ifm_h * self.ifm_w * folds, self.ofm_h * self.ofm_w * folds


def channel_folds(channels: int, per_word: int, name: str = "SIMD") -> int:
    """Words per pixel when a word holds ``per_word`` channels; ValueError unless that divides ``channels``.

    Every stream unit (sliding window, max-pool, in RTL and HLS) needs whole
    words per pixel: a word never straddles two pixels.
    """
    if isinstance(per_word, bool) or not isinstance(per_word, (int, np.integer)) or per_word < 1:
        raise ValueError(f"{name} must be a positive integer, got {per_word!r}")
    if channels % per_word:
        raise ValueError(f"{name}={per_word} does not divide the {channels} channels "
                         f"(a word holds {name} channels of one pixel)")
    return channels // per_word


def _check_maps(fmaps: np.ndarray, h: int, w: int, c: int, what: str) -> np.ndarray:
    fmaps = np.asarray(fmaps)
    if fmaps.ndim != 4 or fmaps.shape[1:] != (h, w, c):
        raise ValueError(f"{what}: feature maps have shape {fmaps.shape}, expected (N, {h}, {w}, {c}) (N, H, W, C)")
    if fmaps.dtype == np.bool_ or not (np.issubdtype(fmaps.dtype, np.integer)
                                       or np.issubdtype(fmaps.dtype, np.floating)):
        # floats are allowed: the golden model keeps codes in the dtype of its exact GEMM
        raise ValueError(f"{what}: feature maps must hold integer codes (an integer or float array), "
                         f"got dtype {fmaps.dtype}")
    return fmaps


def im2col(fmaps: np.ndarray, geom: ConvGeometry, pad_code: int = 0) -> np.ndarray:
    """(N, H, W, C) codes -> (N, OH, OW, K*K*C) im2col vectors in the order of the module docstring."""
    fmaps = _check_maps(fmaps, geom.ifm_h, geom.ifm_w, geom.channels, "im2col")
    n, k, p = fmaps.shape[0], geom.kernel, geom.pad
    padded = np.full((n, geom.ifm_h + 2 * p, geom.ifm_w + 2 * p, geom.channels), pad_code, dtype=fmaps.dtype)
    padded[:, p:p + geom.ifm_h, p:p + geom.ifm_w, :] = fmaps
    windows = [padded[:, ky:ky + geom.ofm_h, kx:kx + geom.ofm_w, :] for ky in range(k) for kx in range(k)]
    return np.concatenate(windows, axis=3)


def max_pool(fmaps: np.ndarray, geom: PoolGeometry) -> np.ndarray:
    """(N, H, W, C) codes -> (N, H // k, W // k, C): the largest code of every k x k window (stride k)."""
    fmaps = _check_maps(fmaps, geom.ifm_h, geom.ifm_w, geom.channels, "max-pool")
    k, oh, ow = geom.pool, geom.ofm_h, geom.ofm_w
    cropped = fmaps[:, :oh * k, :ow * k, :]
    return cropped.reshape(fmaps.shape[0], oh, k, ow, k, geom.channels).max(axis=(2, 4))


def torch_to_im2col_weights(weight: np.ndarray) -> np.ndarray:
    """A conv weight (C_out, C_in, K, K) as the (C_out, K*K*C_in) matrix whose columns follow im2col's order."""
    weight = np.asarray(weight)
    if weight.ndim != 4 or weight.shape[2] != weight.shape[3]:
        raise ValueError(f"conv weight has shape {weight.shape}, expected (C_out, C_in, K, K)")
    return weight.transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)


def chw_to_hwc_columns(weight: np.ndarray, channels: int, h: int, w: int) -> np.ndarray:
    """A fully connected weight that reads a torch-flattened (C, H, W) map, reordered to read (H, W, C).

    The hardware streams feature maps pixel by pixel, so a fully connected
    layer after a convolution sees its input in HWC order.
    """
    weight = np.asarray(weight)
    if weight.ndim != 2 or weight.shape[1] != channels * h * w:
        raise ValueError(f"fully connected weight has shape {weight.shape}, expected (out, {channels * h * w}) "
                         f"for a {channels}x{h}x{w} input map")
    return weight.reshape(weight.shape[0], channels, h, w).transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)
