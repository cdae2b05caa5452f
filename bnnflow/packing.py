"""The one definition of how binary weights and activations become bit words.

Every consumer (golden model, RTL memory files, HLS header, driver) goes through
these functions, so the bit layout is written down exactly once; the prose
version is docs/ARTIFACT.md.

Conventions:
- A binary value +1 is bit 1, -1 is bit 0.
- Neuron ``n`` of a layer folded on ``pe`` processing elements belongs to PE
  ``n % pe`` and is that PE's neuron fold ``nf = n // pe``.
- Synapse ``i`` (input element ``i``) belongs to synapse fold ``sf = i // simd``
  and lane ``i % simd``.
- Weight word address is ``nf * SF + sf``; lane ``j`` is bit ``j`` of the word
  (LSB first). The memory word at one address holds all PEs side by side:
  PE ``p`` occupies bits ``[p*simd, (p+1)*simd)``.
- Padded synapses (``i >= in_features``) have weight bit 1 and input 0: the
  XNOR of a padded lane is 0 and an integer pad pixel is 0, so padding adds
  nothing to any sum.
"""

from __future__ import annotations

import numpy as np


def pad_to_multiple(n: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``n``."""
    return -(-n // multiple) * multiple


def bits_to_pm1(bits: np.ndarray) -> np.ndarray:
    """Map bits {0,1} to values {-1,+1} (int8)."""
    return (np.asarray(bits, dtype=np.int8) * 2 - 1).astype(np.int8)


def pm1_to_bits(values: np.ndarray) -> np.ndarray:
    """Map values {-1,+1} (any sign-carrying array; 0 counts as +1) to bits {0,1}."""
    return (np.asarray(values) >= 0).astype(np.uint8)


def fold_weight_bits(weight_bits: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """Arrange a (MH, MW) 0/1 matrix as (PE, NF*SF, SIMD) lanes, padding MW.

    Returns uint8 bits where ``out[p, nf*SF + sf, j]`` is the weight of neuron
    ``nf*pe + p`` on synapse ``sf*simd + j``; padded synapses are 1.
    """
    weight_bits = np.asarray(weight_bits, dtype=np.uint8)
    mh, mw = weight_bits.shape
    if mh % pe:
        raise ValueError(f"PE={pe} does not divide the layer's {mh} neurons")
    mw_pad = pad_to_multiple(mw, simd)
    padded = np.ones((mh, mw_pad), dtype=np.uint8)
    padded[:, :mw] = weight_bits
    nf, sf = mh // pe, mw_pad // simd
    # neuron n = nf_i*pe + p ; synapse i = sf_i*simd + j
    lanes = padded.reshape(nf, pe, sf, simd).transpose(1, 0, 2, 3)
    return np.ascontiguousarray(lanes.reshape(pe, nf * sf, simd))


def unfold_weight_bits(lanes: np.ndarray, in_features: int) -> np.ndarray:
    """Inverse of :func:`fold_weight_bits`: (PE, NF*SF, SIMD) -> (MH, MW)."""
    if lanes.ndim != 3:
        raise ValueError(f"expected (PE, depth, SIMD) lanes, got shape {lanes.shape}")
    pe, depth, simd = lanes.shape
    mw_pad = pad_to_multiple(in_features, simd)
    sf = mw_pad // simd
    if depth % sf:
        raise ValueError(f"weight depth {depth} is not a multiple of SF={sf}")
    nf = depth // sf
    full = lanes.reshape(pe, nf, sf, simd).transpose(1, 0, 2, 3).reshape(nf * pe, mw_pad)
    return np.ascontiguousarray(full[:, :in_features])


def lanes_to_bytes(lanes: np.ndarray) -> np.ndarray:
    """Pack the last axis (bits, LSB first) into little-endian bytes.

    (..., SIMD) bits -> (..., ceil(SIMD/8)) uint8: bit ``j`` of the word is bit
    ``j % 8`` of byte ``j // 8``.
    """
    return np.packbits(np.asarray(lanes, dtype=np.uint8), axis=-1, bitorder="little")


def bytes_to_lanes(packed: np.ndarray, simd: int) -> np.ndarray:
    """Inverse of :func:`lanes_to_bytes`."""
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=-1, bitorder="little")
    return bits[..., :simd]


def fold_thresholds(thresholds: np.ndarray, pe: int) -> np.ndarray:
    """(MH,) thresholds -> (PE, NF): PE ``p`` at address ``nf`` holds neuron ``nf*pe + p``."""
    thresholds = np.asarray(thresholds)
    mh = thresholds.shape[0]
    if mh % pe:
        raise ValueError(f"PE={pe} does not divide the layer's {mh} neurons")
    return np.ascontiguousarray(thresholds.reshape(mh // pe, pe).T)


def unfold_thresholds(folded: np.ndarray) -> np.ndarray:
    """Inverse of :func:`fold_thresholds`."""
    return np.ascontiguousarray(np.asarray(folded).T.reshape(-1))


def words_to_int(fields: np.ndarray, field_bits: int) -> list[int]:
    """Concatenate the last axis of ``fields`` into Python ints, field 0 in the LSBs.

    ``fields`` holds unsigned or two's-complement signed values; each is masked
    to ``field_bits``. Used for memory files, HLS literals and stream words.
    """
    fields = np.asarray(fields, dtype=np.int64)
    mask = (1 << field_bits) - 1
    flat = fields.reshape(-1, fields.shape[-1])
    out = []
    for row in flat:
        word = 0
        for k, value in enumerate(row.tolist()):
            word |= (int(value) & mask) << (k * field_bits)
        out.append(word)
    return out


def int_to_fields(words: list[int], count: int, field_bits: int, signed: bool) -> np.ndarray:
    """Split ints into ``count`` fields of ``field_bits`` (inverse of :func:`words_to_int`)."""
    mask = (1 << field_bits) - 1
    out = np.empty((len(words), count), dtype=np.int64)
    for r, word in enumerate(words):
        for k in range(count):
            value = (int(word) >> (k * field_bits)) & mask
            if signed and value >> (field_bits - 1):
                value -= 1 << field_bits
            out[r, k] = value
    return out


def pack_input_words(images: np.ndarray, simd: int, elem_bits: int) -> list[list[int]]:
    """Stream words for a batch of flat integer images: one list of SF words per image.

    Element ``i`` of an image is field ``i % simd`` of word ``i // simd``; the
    image is padded with zeros to a multiple of ``simd``.
    """
    images = np.asarray(images, dtype=np.int64)
    n, features = images.shape
    padded = np.zeros((n, pad_to_multiple(features, simd)), dtype=np.int64)
    padded[:, :features] = images
    words = words_to_int(padded.reshape(n, -1, simd), elem_bits)
    sf = padded.shape[1] // simd
    return [words[i * sf:(i + 1) * sf] for i in range(n)]


def unpack_output_words(words: list[int], pe: int, elem_bits: int, signed: bool) -> np.ndarray:
    """Flat output vector from NF stream words of ``pe`` fields each (neuron nf*pe + p)."""
    return int_to_fields(words, pe, elem_bits, signed).reshape(-1)
