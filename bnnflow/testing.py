"""Random networks for tests and benchmarks (seeded), written through the real writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import artifact as art
from .folding import LayerFolding, default_folding
from .writer import LayerData, write_artifact


def random_layers(
    rng: np.random.Generator, input_features: int, hidden: list[int], classes: int, input_bits: int
) -> list[LayerData]:
    """A random int_threshold -> xnor_threshold* -> xnor_score stack.

    Thresholds are drawn around the middle of each accumulator's range so that
    outputs are a mix of 0s and 1s, with a few always-on/always-off neurons.
    """
    sizes = [input_features] + list(hidden) + [classes]
    layers = []
    for i, (mw, mh) in enumerate(zip(sizes, sizes[1:])):
        w = rng.integers(0, 2, size=(mh, mw), dtype=np.uint8)
        if i == 0:
            peak = mw * ((1 << input_bits) - 1)
            spread = max(1, peak // 8)
            t = rng.integers(-spread, spread + 1, size=mh)
            t[: max(1, mh // 16)] = -peak          # always on
            t[-max(1, mh // 16):] = peak + 1       # always off
            layers.append(LayerData(art.INT_THRESHOLD, w, t, input_bits=input_bits))
        elif i < len(sizes) - 2:
            t = rng.integers(max(0, mw // 2 - max(2, mw // 8)), mw // 2 + max(2, mw // 8) + 1, size=mh)
            t[0] = 0
            t[-1] = mw + 1
            layers.append(LayerData(art.XNOR_THRESHOLD, w, t, input_bits=1))
        else:
            layers.append(LayerData(art.XNOR_SCORE, w, None, input_bits=1))
    return layers


def random_artifact(
    out_dir: str | Path,
    seed: int = 0,
    input_features: int = 64,
    hidden: tuple[int, ...] = (64, 32),
    classes: int = 10,
    input_bits: int = 5,
    folding: list[LayerFolding] | None = None,
    n_vectors: int = 16,
    generate: tuple[str, ...] = ("rtl", "hls"),
) -> art.Artifact:
    """Write a random network's artifact with ``n_vectors`` random test images."""
    rng = np.random.default_rng(seed)
    layers = random_layers(rng, input_features, list(hidden), classes, input_bits)
    shapes = [(l.weight_bits.shape[1], l.weight_bits.shape[0]) for l in layers]
    folding = folding or default_folding(shapes)
    images = rng.integers(0, 1 << input_bits, size=(n_vectors, input_features), dtype=np.uint8)
    labels = rng.integers(0, classes, size=n_vectors)
    network = {"name": f"random{seed}", "input_features": input_features, "input_shape": [input_features],
               "input_bits": input_bits, "num_classes": classes, "method": "random", "dataset": "random"}
    return write_artifact(out_dir, network, layers, folding, vectors=(images, labels), generate=generate)
