"""The golden model: a bit-exact integer model of the engines, in numpy.

It reads only the exported artifact (never the torch model) and computes what
the hardware computes, layer by layer, with the padding and negation exactly as
stored. Every other level (torch, RTL, HLS, driver) is compared against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import artifact as art


def argmax_lowest(scores: np.ndarray) -> np.ndarray:
    """Prediction rule of every level: argmax over classes, ties to the lowest index."""
    return np.argmax(np.asarray(scores), axis=-1)


@dataclass
class GoldenTrace:
    """Per-layer integer values for a batch: accumulators (pre-threshold) and outputs."""

    accumulators: list[np.ndarray]  # (N, MH) int64 per layer: signed sum / popcount
    outputs: list[np.ndarray]       # (N, MH) per layer: 0/1 bits, or signed scores for the last

    @property
    def scores(self) -> np.ndarray:
        return self.outputs[-1]


class GoldenModel:
    """Integer reference of the deployed network described by an artifact."""

    def __init__(self, artifact: art.Artifact):
        self.artifact = artifact
        self._weights = []      # (MH, MW_pad) int64 weight bits, padding = 1
        self._thresholds = []
        for i, layer in enumerate(artifact.layers):
            lanes = artifact.weight_lanes(i)
            full = lanes.reshape(layer.pe, layer.nf, layer.sf * layer.simd).transpose(1, 0, 2)
            self._weights.append(full.reshape(layer.out_features, layer.in_features_padded).astype(np.int64))
            t = artifact.thresholds(i)
            self._thresholds.append(None if t is None else t.astype(np.int64))

    def check_images(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 2 or images.shape[1] != self.artifact.input_features:
            raise ValueError(
                f"images must have shape (N, {self.artifact.input_features}), got {images.shape}")
        if images.dtype == np.bool_ or not np.issubdtype(images.dtype, np.integer):
            # a float 0.9 would silently become pixel 0: the hardware reads integers, so must the caller
            raise TypeError(f"images must be an integer array (unsigned {self.artifact.input_bits}-bit values), "
                            f"got dtype {images.dtype}")
        if images.size and (images.min() < 0 or images.max() >= (1 << self.artifact.input_bits)):
            raise ValueError(f"image values must be unsigned {self.artifact.input_bits}-bit integers, "
                             f"got values in [{images.min()}, {images.max()}]")
        return images.astype(np.int64)

    def trace(self, images: np.ndarray) -> GoldenTrace:
        x = self.check_images(images)
        accs, outs = [], []
        for layer, w, t in zip(self.artifact.layers, self._weights, self._thresholds):
            padded = np.zeros((x.shape[0], layer.in_features_padded), dtype=np.int64)
            padded[:, :layer.in_features] = x
            if layer.kind == art.INT_THRESHOLD:
                acc = padded @ (2 * w - 1).T              # unsigned pixels times +-1
            else:
                # popcount of XNOR = matches of ones + matches of zeros
                acc = padded @ w.T + (1 - padded) @ (1 - w).T
            accs.append(acc)
            if layer.kind == art.XNOR_SCORE:
                x = 2 * acc - layer.in_features
            else:
                x = (acc >= t[None, :]).astype(np.int64)
            outs.append(x)
        return GoldenTrace(accs, outs)

    def scores(self, images: np.ndarray) -> np.ndarray:
        """(N, num_classes) int64 scores."""
        return self.trace(images).scores

    def predict(self, images: np.ndarray) -> np.ndarray:
        return argmax_lowest(self.scores(images))
