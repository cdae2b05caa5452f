"""Random networks for tests and benchmarks (seeded), written through the real writer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from . import artifact as art
from . import export
from .folding import LayerFolding, default_folding, largest_divisor_at_most
from .packing import unfold_weight_bits
from .writer import LayerData, write_artifact


def random_layers(
    rng: np.random.Generator, input_features: int, hidden: list[int], classes: int, input_bits: int,
    binary_input_as_xnor: bool = False,
) -> list[LayerData]:
    """A random int_threshold -> xnor_threshold* -> xnor_score stack.

    Thresholds are drawn around the middle of each accumulator's range so that
    outputs are a mix of 0s and 1s, with a few always-on/always-off neurons.
    ``binary_input_as_xnor`` (1-bit input only) rewrites the first layer as
    ``bnnflow export`` writes a trained net on 1-bit pixels: an XNOR layer
    (:func:`bnnflow.export.binary_input_as_xnor`).
    """
    if binary_input_as_xnor and input_bits != 1:
        raise ValueError(f"binary_input_as_xnor needs input_bits=1, got {input_bits}")
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
            first = LayerData(art.INT_THRESHOLD, w, t, input_bits=input_bits)
            layers.append(export.binary_input_as_xnor(first) if binary_input_as_xnor else first)
        elif i < len(sizes) - 2:
            t = rng.integers(max(0, mw // 2 - max(2, mw // 8)), mw // 2 + max(2, mw // 8) + 1, size=mh)
            t[0] = 0
            t[-1] = mw + 1
            layers.append(LayerData(art.XNOR_THRESHOLD, w, t, input_bits=1))
        else:
            layers.append(LayerData(art.XNOR_SCORE, w, None, input_bits=1))
    return layers


def random_codes(rng: np.random.Generator, shape: tuple[int, int], weight_bits: int, encoding: str) -> np.ndarray:
    """Uniform random weight codes the encoding allows (int: never the unused code -2^(K-1))."""
    if encoding == art.SYM:
        return rng.integers(0, 1 << weight_bits, size=shape, dtype=np.uint8)
    top = (1 << (weight_bits - 1)) - 1
    return art.weight_codes(rng.integers(-top, top + 1, size=shape), weight_bits, encoding)


def random_layer(
    rng: np.random.Generator, kind: str, mw: int, mh: int, input_bits: int = 1, weight_bits: int = 1,
    weight_encoding: str = art.SYM, n_thresholds: int = 1, affine_bits: int = 0,
) -> LayerData:
    """One random layer of any kind and widths, with values that exercise it.

    Thresholds (sorted per neuron) are drawn around the accumulator's centre
    with its standard deviation for uniform random inputs, so outputs spread
    over all levels; neuron 0 always outputs the top level and the last neuron
    always 0 (thresholds at the accumulator's extremes). Affines draw mul and
    add over their whole width, extremes included.
    """
    codes = random_codes(rng, (mh, mw), weight_bits, weight_encoding)
    thresholds = affine = None
    if kind.endswith("_threshold"):
        spec = art.LayerSpec(0, kind, mw, mh, 1, 1, input_bits, "", "", weight_bits, weight_encoding,
                             n_thresholds)
        lo, hi = spec.acc_range()
        if spec.mac == "xnor":
            centre, sd = mw / 2, max(1.0, np.sqrt(mw) / 2)
        else:
            x2 = ((1 << input_bits) - 1) * ((1 << input_bits + 1) - 1) / 6           # E[x^2], x uniform
            w = art.weight_values(np.arange(1 << weight_bits), weight_bits, weight_encoding)
            w2 = float(np.mean(w[np.abs(w) <= spec.weight_max] ** 2))
            centre, sd = 0.0, max(1.0, np.sqrt(mw * x2 * w2))
        draws = np.rint(rng.normal(centre, 1.5 * sd, size=(mh, n_thresholds))).astype(np.int64)
        thresholds = np.sort(np.clip(draws, lo, hi + 1), axis=1)
        thresholds[0] = lo
        thresholds[-1] = hi + 1
        if n_thresholds == 1:
            thresholds = thresholds[:, 0]
    elif affine_bits:
        top = 1 << (affine_bits - 1)
        affine = rng.integers(-top, top, size=(mh, 2), dtype=np.int64)
        affine[0] = (-top, -top)
        affine[-1] = (top - 1, top - 1)
    return LayerData(kind, codes, thresholds, input_bits=input_bits, weight_bits=weight_bits,
                     weight_encoding=weight_encoding, affine=affine, affine_bits=affine_bits)


def random_stack(
    rng: np.random.Generator, input_features: int, input_bits: int, layers: list[dict],
) -> list[LayerData]:
    """Chain random layers: each dict gives ``mh`` and optionally ``kind`` (default: int_threshold, last
    int_score), ``weight_bits``, ``weight_encoding``, ``n_thresholds``, ``affine_bits``; a layer's
    ``input_bits`` is what the previous one outputs. An ``xnor_*`` layer needs a 1-bit input.
    """
    out = []
    mw, bits = input_features, input_bits
    for k, params in enumerate(layers):
        params = dict(params)
        mh = params.pop("mh")
        kind = params.pop("kind", art.INT_SCORE if k == len(layers) - 1 else art.INT_THRESHOLD)
        layer = random_layer(rng, kind, mw, mh, input_bits=bits, **params)
        out.append(layer)
        mw, bits = mh, max(1, layer.n_thresholds.bit_length())
    return out


def random_conv_stack(
    rng: np.random.Generator, ifm: tuple[int, int, int], input_bits: int, layers: list[dict],
) -> list[LayerData]:
    """Chain random conv and fully connected layers over an (H, W, C) input map.

    A dict with ``kernel`` is a convolution: ``mh`` output channels,
    ``kernel``, ``pad`` (default 0), ``pool`` (default 0) and ``pad_code``
    (default 1 for an ``xnor_*`` layer, whose +-1 inputs pad with +1, else
    0); other dicts are fully connected layers reading the flattened map.
    The remaining keys are :func:`random_layer`'s (``kind`` defaults to
    int_threshold, the last layer int_score). Shapes are checked by
    :class:`~bnnflow.artifact.ConvSpec` when the layers are written.
    """
    out = []
    h, w, c = ifm
    elements, bits = h * w * c, input_bits
    spatial = True
    for k, params in enumerate(layers):
        params = dict(params)
        mh = params.pop("mh")
        kind = params.pop("kind", art.INT_SCORE if k == len(layers) - 1 else art.INT_THRESHOLD)
        conv_spec = None
        if "kernel" in params:
            if not spatial:
                raise ValueError(f"layer {k}: a convolution after a fully connected layer has no map to read")
            kernel, pad, pool = params.pop("kernel"), params.pop("pad", 0), params.pop("pool", 0)
            pad_code = params.pop("pad_code", 1 if kind.startswith("xnor") else 0)
            conv_spec = art.ConvSpec(h, w, c, kernel, pad, pad_code, pool)
            mw = kernel * kernel * c
        else:
            spatial, mw = False, elements
        layer = random_layer(rng, kind, mw, mh, input_bits=bits, **params)
        out.append(dataclasses.replace(layer, conv=conv_spec))
        bits = max(1, layer.n_thresholds.bit_length())
        if conv_spec is not None:
            oh, ow = h + 2 * conv_spec.pad - kernel + 1, w + 2 * conv_spec.pad - kernel + 1
            h, w, c = (oh // pool, ow // pool, mh) if pool else (oh, ow, mh)
            elements = h * w * c
        else:
            elements = mh
    return out


def conv_artifact(
    out_dir: str | Path, seed: int, ifm: tuple[int, int, int], input_bits: int, layers: list[dict],
    folding: list[LayerFolding] | None = None, n_vectors: int = 8, generate: tuple[str, ...] = (),
) -> art.Artifact:
    """A random conv net's artifact (:func:`random_conv_stack`) whose thresholds are drawn from its own
    accumulators on the ``n_vectors`` random test images (:func:`fit_thresholds_to_images`), so every
    threshold layer's outputs vary. The default folding gives each conv the widest SIMD dividing its
    channels."""
    rng = np.random.default_rng(seed)
    data = random_conv_stack(rng, ifm, input_bits, layers)
    channels = [d.conv.channels if d.conv else None for d in data]
    folding = folding or default_folding([d.shape for d in data], channels=channels)
    features = ifm[0] * ifm[1] * ifm[2]
    images = rng.integers(0, 1 << input_bits, size=(n_vectors, features), dtype=np.uint8)
    classes = data[-1].shape[1]
    network = {"name": f"conv{seed}", "input_features": features, "input_shape": list(ifm),
               "input_bits": input_bits, "num_classes": classes, "method": "random", "dataset": "random"}
    data = fit_thresholds_to_images(rng, network, data, folding, images)
    labels = rng.integers(0, classes, size=n_vectors)
    return write_artifact(out_dir, network, data, folding, vectors=(images, labels), generate=generate)


def data_thresholds(rng: np.random.Generator, spec: art.LayerSpec, accs: np.ndarray) -> np.ndarray:
    """(MH, N) thresholds drawn from the accumulators ``accs`` (images, MH) the layer sees on test images.

    Each threshold is an accumulator value of its neuron, moved by -1, 0 or
    +1 (so ``acc == T``, the inclusive edge of the compare, occurs often);
    sorted per neuron. Neuron 0 always outputs the top code (thresholds at
    the accumulator's minimum) and the last neuron 0 (one above its maximum).
    """
    lo, hi = spec.acc_range()
    n = spec.n_thresholds
    t = np.empty((spec.out_features, n), dtype=np.int64)
    for neuron in range(spec.out_features):
        t[neuron] = rng.choice(accs[:, neuron], size=n) + rng.integers(-1, 2, size=n)
    t = np.sort(np.clip(t, lo, hi + 1), axis=1)
    t[0], t[-1] = lo, hi + 1
    return t


def fit_thresholds_to_images(rng: np.random.Generator, network: dict, layers: list[LayerData],
                             folding: list[LayerFolding], images: np.ndarray) -> list[LayerData]:
    """``layers`` with every threshold layer's thresholds drawn from its accumulators on ``images``.

    Why: thresholds drawn blind (:func:`random_layer`) leave the neurons of a
    deep stack constant across images from the second layer on, so a test
    would compare outputs that cannot differ. Each prefix of the stack is
    written and run through the golden model (the one definition of the
    arithmetic) to get the accumulators the next thresholds are drawn from.
    """
    import dataclasses
    import tempfile

    from .golden import GoldenModel
    from .writer import layer_spec

    layers = list(layers)
    with tempfile.TemporaryDirectory(prefix="bnnflow-prefix-") as tmp:
        for k, (layer, fold) in enumerate(zip(layers, folding)):
            spec = layer_spec(k, layer, fold)
            if not spec.has_thresholds:
                continue
            prefix = dict(network, num_classes=max(2, spec.out_elements))   # a conv prefix ends in a map
            a = write_artifact(Path(tmp) / f"p{k}", prefix, layers[:k + 1], folding[:k + 1], generate=())
            accs = GoldenModel(a).trace(images).accumulators[k].reshape(-1, spec.out_features)  # conv: every pixel
            t = data_thresholds(rng, spec, accs)
            layers[k] = dataclasses.replace(layer, thresholds=t[:, 0] if spec.n_thresholds == 1 else t)
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
    binary_input_as_xnor: bool = False,
) -> art.Artifact:
    """Write a random network's artifact with ``n_vectors`` random test images (see :func:`random_layers`)."""
    rng = np.random.default_rng(seed)
    layers = random_layers(rng, input_features, list(hidden), classes, input_bits, binary_input_as_xnor)
    folding = folding or default_folding([l.shape for l in layers])
    images = rng.integers(0, 1 << input_bits, size=(n_vectors, input_features), dtype=np.uint8)
    labels = rng.integers(0, classes, size=n_vectors)
    network = {"name": f"random{seed}", "input_features": input_features, "input_shape": [input_features],
               "input_bits": input_bits, "num_classes": classes, "method": "random", "dataset": "random"}
    return write_artifact(out_dir, network, layers, folding, vectors=(images, labels), generate=generate)


def _leading_digit_bits(simd: int) -> int:
    """Bits behind the first two hex digits of a zero-padded ``simd``-bit word."""
    digits = -(-simd // 4)
    return simd - 4 * (digits - 2) if digits >= 2 else simd


def force_leading_digits(lanes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Give the words of ``lanes`` (PE, depth, SIMD) every value of their first two hex digits.

    The words are visited in a random order; word ``i`` of that order gets the
    value ``i mod 2^b`` in its top ``b`` bits (the bits the first two hex
    digits of its literal show), so with at least ``2^b`` words each pattern,
    "0b" and "0d" included, occurs at least once.
    """
    pe, depth, simd = lanes.shape
    b = _leading_digit_bits(simd)
    order = rng.permutation(pe * depth)
    flat = lanes.reshape(pe * depth, simd).copy()
    for i, w in enumerate(order):
        value = i % (1 << b)
        flat[w, simd - b:] = (value >> np.arange(b)) & 1
    return flat.reshape(pe, depth, simd)


def simd_sweep_artifact(
    out_dir: str | Path,
    wide_simds: tuple[int, ...] = (65, 96, 128, 130, 256, 512, 784, 1025, 2048, 4096),
    narrow_simds: tuple[int, ...] = (1, 2, 3, 7, 8, 31, 32, 33, 63, 64),
    seed: int = 0,
    n_vectors: int = 8,
    generate: tuple[str, ...] = ("rtl", "hls"),
) -> art.Artifact:
    """A random network whose layers use every SIMD of ``wide_simds`` and ``narrow_simds``.

    Each wide SIMD ``s`` gets a layer ``s -> 256`` folded to SIMD ``s`` (256
    words, so :func:`force_leading_digits` puts every leading-two-hex-digit
    pattern into it), fed by a ``4 -> s`` layer (SIMD 4) and followed by a
    ``256 -> 4`` layer that takes the narrow SIMDs in turn, so the weight
    memories stay small (about 260 x sum(wide_simds) bits in about
    sum(wide_simds) words: g++'s compile time grows with the word count).
    The first layer reads 1-bit inputs; the last one scores 4 classes.
    """
    rng = np.random.default_rng(seed)
    narrow = list(narrow_simds)

    def next_narrow(limit: int) -> int:
        for i, s in enumerate(narrow):
            if s <= limit:
                return narrow.pop(i)
        return int(rng.integers(1, limit + 1))

    shapes: list[tuple[int, int, LayerFolding]] = []     # (MW, MH, folding)
    for k, s in enumerate(wide_simds):
        if k:
            shapes.append((4, s, LayerFolding(pe=largest_divisor_at_most(s, 16), simd=4)))      # one word per neuron
        shapes.append((s, 256, LayerFolding(pe=16, simd=s)))
        shapes.append((256, 4, LayerFolding(pe=2, simd=next_narrow(64))))
    while narrow:                                           # narrow SIMDs left over: 4 -> 4 layers
        shapes.append((4, 256, LayerFolding(pe=16, simd=next_narrow(4))))
        shapes.append((256, 4, LayerFolding(pe=4, simd=next_narrow(64))))

    layers = []
    for i, (mw, mh, fold) in enumerate(shapes):
        lanes = rng.integers(0, 2, size=(fold.pe, (mh // fold.pe) * (-(-mw // fold.simd)), fold.simd), dtype=np.uint8)
        if fold.simd > 64:
            lanes = force_leading_digits(lanes, rng)
        w = unfold_weight_bits(lanes, mw)
        if i == 0:
            layers.append(LayerData(art.INT_THRESHOLD, w, rng.integers(-mw // 8, mw // 8 + 1, size=mh), input_bits=1))
        elif i < len(shapes) - 1:
            layers.append(LayerData(art.XNOR_THRESHOLD, w, rng.integers(mw // 2 - 2, mw // 2 + 3, size=mh)))
        else:
            layers.append(LayerData(art.XNOR_SCORE, w, None))
    mw0, classes = shapes[0][0], shapes[-1][1]
    images = rng.integers(0, 2, size=(n_vectors, mw0), dtype=np.uint8)
    labels = rng.integers(0, classes, size=n_vectors)
    network = {"name": f"simd_sweep{seed}", "input_features": mw0, "input_shape": [mw0], "input_bits": 1,
               "num_classes": classes, "method": "random", "dataset": "random"}
    return write_artifact(out_dir, network, layers, [f for _, _, f in shapes], vectors=(images, labels),
                          generate=generate)

