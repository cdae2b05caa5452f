"""bnnflow.conv: im2col, max-pool and the weight reorderings equal torch's conv2d / max_pool2d / flatten."""

from __future__ import annotations

import numpy as np
import pytest

from bnnflow.conv import ConvGeometry, PoolGeometry, chw_to_hwc_columns, im2col, max_pool, torch_to_im2col_weights

torch = pytest.importorskip("torch")
F = torch.nn.functional


@pytest.mark.parametrize("h, w, c, k, pad, pad_code", [
    (8, 8, 3, 3, 0, 0), (8, 8, 3, 3, 1, 0), (7, 5, 4, 3, 1, 1), (6, 6, 2, 5, 2, 3), (4, 4, 1, 1, 0, 0),
    (5, 9, 8, 2, 1, 7),
])
def test_im2col_times_weights_is_torch_conv2d(h, w, c, k, pad, pad_code):
    """Padding with ``pad_code`` is torch's conv of the map framed by that value."""
    rng = np.random.default_rng(h * 100 + k)
    geom = ConvGeometry(h, w, c, k, pad)
    fmaps = rng.integers(0, 8, size=(3, h, w, c))
    weight = rng.integers(-4, 5, size=(5, c, k, k))
    got = im2col(fmaps, geom, pad_code) @ torch_to_im2col_weights(weight).T      # (N, OH, OW, C_out)
    x = torch.tensor(fmaps, dtype=torch.float64).permute(0, 3, 1, 2)
    x = F.pad(x, (pad, pad, pad, pad), value=float(pad_code))
    want = F.conv2d(x, torch.tensor(weight, dtype=torch.float64)).permute(0, 2, 3, 1).numpy()
    assert got.shape == (3, geom.ofm_h, geom.ofm_w, 5)
    np.testing.assert_array_equal(got, want.astype(np.int64))


def test_im2col_order_is_window_position_then_channel():
    geom = ConvGeometry(3, 3, 2, 3, 1)
    fmaps = np.arange(18).reshape(1, 3, 3, 2)
    v = im2col(fmaps, geom, pad_code=-1)[0, 0, 0]                 # output pixel (0, 0): window rows -1..1
    assert v.tolist() == [-1, -1, -1, -1, -1, -1, -1, -1, 0, 1, 2, 3, -1, -1, 6, 7, 8, 9]


@pytest.mark.parametrize("h, w, c, k", [(8, 8, 3, 2), (7, 9, 4, 2), (6, 6, 1, 3), (5, 5, 2, 5)])
def test_max_pool_is_torch_max_pool2d(h, w, c, k):
    rng = np.random.default_rng(k + h)
    fmaps = rng.integers(0, 16, size=(4, h, w, c))
    got = max_pool(fmaps, PoolGeometry(h, w, c, k))
    want = F.max_pool2d(torch.tensor(fmaps).permute(0, 3, 1, 2).double(), k).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(got, want.astype(np.int64))


def test_flatten_reorder_reads_hwc_maps():
    rng = np.random.default_rng(5)
    c, h, w = 3, 4, 2
    fmap = rng.integers(0, 9, size=(c, h, w))
    weight = rng.integers(-3, 4, size=(6, c * h * w))
    np.testing.assert_array_equal(chw_to_hwc_columns(weight, c, h, w) @ fmap.transpose(1, 2, 0).reshape(-1),
                                  weight @ fmap.reshape(-1))


@pytest.mark.parametrize("make, message", [
    (lambda: ConvGeometry(4, 4, 2, 3, 3), "pad must be an integer in 0..kernel-1 = 2, got 3"),
    (lambda: ConvGeometry(2, 4, 2, 3, 0), "a 3x3 kernel with pad 0 does not fit the 2x4 input map"),
    (lambda: ConvGeometry(4, 4, 0, 3), "channels must be a positive integer, got 0"),
    (lambda: PoolGeometry(1, 4, 2, 2), "a 2x2 window does not fit the 1x4 input map"),
    (lambda: im2col(np.zeros((1, 4, 4, 3), dtype=np.int64), ConvGeometry(4, 4, 2, 3)),
     r"feature maps have shape \(1, 4, 4, 3\), expected \(N, 4, 4, 2\)"),
    (lambda: max_pool(np.zeros((1, 4, 4, 2), dtype=bool), PoolGeometry(4, 4, 2, 2)),
     r"must hold integer codes \(an integer or float array\), got dtype bool"),
])
def test_bad_geometry_is_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_stream_words_count_pixels_in_channel_folds():
    """What a sliding window / max-pool reads and writes per image, in words of SIMD (PE) channels."""
    from bnnflow.conv import channel_folds

    assert ConvGeometry(32, 32, 64, 3, 1).stream_words(32) == (32 * 32 * 2, 32 * 32 * 9 * 2)
    assert ConvGeometry(5, 7, 6, 2, 0).stream_words(3) == (35 * 2, 4 * 6 * 4 * 2)
    assert PoolGeometry(30, 30, 64, 2).stream_words(16) == (900 * 4, 225 * 4)
    assert PoolGeometry(7, 8, 6, 3).stream_words(2) == (56 * 3, 2 * 2 * 3)       # a row and columns dropped
    with pytest.raises(ValueError, match=r"SIMD=4 does not divide the 6 channels \(a word holds SIMD channels"):
        ConvGeometry(5, 5, 6, 3, 1).stream_words(4)
    with pytest.raises(ValueError, match=r"PE must be a positive integer, got 0"):
        channel_folds(8, 0, "PE")
