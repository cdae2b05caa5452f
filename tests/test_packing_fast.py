"""The vectorized stream-word bytes (bnnflow.packing) equal the per-word definitions, bit for bit.

The per-word definitions are ``words_to_int``/``int_to_fields`` (the layout
the RTL memory files, HLS literals and cocotb testbenches use) plus
``dma_layout.words_to_bytes``/``bytes_to_words`` (a Python int as
``word_bytes`` little-endian bytes). Every case is seeded and swept over
field widths, fields per word, word widths and batch sizes, N = 0 and 1
included.
"""

from __future__ import annotations

import numpy as np
import pytest

from bnnflow import packing
from bnnflow.folding import LayerFolding
from bnnflow.host import dma_layout
from bnnflow.testing import random_artifact

#: fields per word (SIMD or PE): 1, below a byte, a byte, odd, LFC's SIMD 64, wide
COUNTS = (1, 3, 8, 13, 64, 100)
#: images / words per call
BATCHES = (0, 1, 5)


def random_fields(rng: np.random.Generator, shape: tuple[int, ...], bits: int, signed: bool) -> np.ndarray:
    """int64 fields spanning the whole range of ``bits`` (both ends forced in when there is room)."""
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not signed and bits == 64:
        raise ValueError("no unsigned 64-bit int64 fields")
    fields = rng.integers(lo, hi, size=shape, dtype=np.int64, endpoint=True)
    flat = fields.reshape(-1)
    if flat.size >= 2:
        flat[0], flat[-1] = lo, hi
    return fields


def per_word_bytes(fields: np.ndarray, bits: int, word_bytes: int) -> np.ndarray:
    """The reference: each row's Python int from words_to_int, as word_bytes little-endian bytes."""
    rows = fields.reshape(-1, fields.shape[-1])
    return dma_layout.words_to_bytes(packing.words_to_int(rows, bits), word_bytes).reshape(rows.shape[0], word_bytes)


def per_word_fields(data: np.ndarray, count: int, bits: int, word_bytes: int, signed: bool) -> np.ndarray:
    """The reference inverse: bytes_to_words (masking to the TDATA bits), then int_to_fields."""
    words = dma_layout.bytes_to_words(data, word_bytes, count * bits)
    return packing.int_to_fields(words, count, bits, signed).reshape(len(words), count)


def word_widths(count: int, bits: int) -> list[int]:
    """The minimum ceil(count*bits/8) bytes, one more, and widened to the next 8 / 64-byte DMA beat."""
    least = -(-count * bits // 8)
    return sorted({least, least + 1, -(-least // 8) * 8, max(least, 64)})


def check_against_per_word(rng, n: int, count: int, bits: int, signed: bool) -> None:
    for word_bytes in word_widths(count, bits):
        fields = random_fields(rng, (n, count), bits, signed)
        packed = packing.pack_fields_to_bytes(fields, bits, word_bytes)
        assert packed.dtype == np.uint8 and packed.shape == (n, word_bytes)
        np.testing.assert_array_equal(packed, per_word_bytes(fields, bits, word_bytes))
        back = packing.unpack_bytes_to_fields(packed, count, bits, word_bytes, signed)
        assert back.dtype == np.int64 and back.shape == (n, count)
        np.testing.assert_array_equal(back, fields)
        np.testing.assert_array_equal(back, per_word_fields(packed, count, bits, word_bytes, signed))


@pytest.mark.parametrize("bits", range(1, 9))
def test_input_fields_equal_the_per_word_definition(bits):
    """Unsigned input elements of 1..8 bits, every count, word width and batch size."""
    rng = np.random.default_rng(100 + bits)
    for count in COUNTS:
        for n in BATCHES:
            check_against_per_word(rng, n, count, bits, signed=False)


@pytest.mark.parametrize("bits", range(2, 33))
def test_signed_scores_equal_the_per_word_definition(bits):
    """Two's-complement score fields of 2..32 bits (output_bits of a score layer of up to 2**31 inputs)."""
    rng = np.random.default_rng(200 + bits)
    for count in (1, 2, 3, 10, 16):  # PE values
        for n in BATCHES:
            check_against_per_word(rng, n, count, bits, signed=True)


def test_every_width_up_to_64_both_signs():
    """The bounds of the byte functions: 1..64-bit fields, signed and unsigned (unsigned 64 is refused)."""
    rng = np.random.default_rng(7)
    for bits in range(1, 65):
        for signed in (False, True):
            if bits == 64 and not signed:
                continue
            for count in (1, 5, 9):
                check_against_per_word(rng, 4, count, bits, signed)


@pytest.mark.parametrize("bits", (1, 3, 5, 8, 12))
def test_values_are_masked_like_words_to_int(bits):
    """Out-of-range values keep only their low field_bits bits (two's complement), as words_to_int does."""
    rng = np.random.default_rng(bits)
    wild = rng.integers(-(1 << 40), 1 << 40, size=(6, 7), dtype=np.int64)
    word_bytes = -(-7 * bits // 8)
    packed = packing.pack_fields_to_bytes(wild, bits, word_bytes)
    np.testing.assert_array_equal(packed, per_word_bytes(wild, bits, word_bytes))
    np.testing.assert_array_equal(packing.unpack_bytes_to_fields(packed, 7, bits, word_bytes, signed=False),
                                  wild & ((1 << bits) - 1))


def test_any_integer_dtype_gives_the_same_bytes():
    """uint8 (the driver's images), int8, big-endian and strided arrays: the bytes depend only on the values."""
    rng = np.random.default_rng(3)
    values = rng.integers(-100, 100, size=(5, 2 * 13), dtype=np.int64)
    for bits in (5, 8, 12):
        word_bytes = -(-13 * bits // 8) + 1
        reference = per_word_bytes(values[:, ::2], bits, word_bytes)
        for variant in (values.astype(np.int8), values.astype(">i4"), values.astype(np.int16)):
            np.testing.assert_array_equal(packing.pack_fields_to_bytes(variant[:, ::2], bits, word_bytes), reference)
    pixels = rng.integers(0, 256, size=(4, 13), dtype=np.uint8)
    np.testing.assert_array_equal(packing.pack_fields_to_bytes(pixels, 8, 16), per_word_bytes(pixels, 8, 16))


@pytest.mark.parametrize("bits,signed", [(1, False), (5, False), (8, False), (6, True), (12, True), (16, True)])
def test_bits_above_tdata_are_zero_on_pack_and_ignored_on_unpack(bits, signed):
    rng = np.random.default_rng(bits)
    count = 7
    tdata = count * bits
    word_bytes = -(-tdata // 8) + 3
    fields = random_fields(rng, (9, count), bits, signed)
    packed = packing.pack_fields_to_bytes(fields, bits, word_bytes)
    bits_of = np.unpackbits(packed, axis=1, bitorder="little")
    assert not bits_of[:, tdata:].any()  # zero from the TDATA width up to 8 * word_bytes
    # fill every bit above TDATA with ones: the fields read back the same
    bits_of[:, tdata:] = 1
    dirty = np.packbits(bits_of, axis=1, bitorder="little")
    assert not np.array_equal(dirty, packed)
    np.testing.assert_array_equal(packing.unpack_bytes_to_fields(dirty, count, bits, word_bytes, signed), fields)
    np.testing.assert_array_equal(per_word_fields(dirty, count, bits, word_bytes, signed), fields)


@pytest.mark.parametrize("bits", (1, 2, 5, 8))
@pytest.mark.parametrize("simd", (1, 7, 8, 16, 49, 64, 100))
def test_vectors_equal_pack_input_words(bits, simd):
    """Whole images: element i is field i % SIMD of word i // SIMD, zero padding when SIMD does not divide F."""
    rng = np.random.default_rng(bits * 1000 + simd)
    features = 784
    for n in BATCHES:
        images = rng.integers(0, 1 << bits, size=(n, features), dtype=np.uint8)
        words = packing.pack_input_words(images, simd, bits)
        word_bytes = -(-simd * bits // 8)
        expected = dma_layout.words_to_bytes([w for image in words for w in image], word_bytes)
        packed = packing.pack_vectors(images, simd, bits, word_bytes)
        sf = -(-features // simd)
        assert packed.shape == (n, sf * word_bytes)
        np.testing.assert_array_equal(packed.reshape(-1), expected)
        np.testing.assert_array_equal(packing.unpack_vectors(packed, n, features, simd, bits, word_bytes, False),
                                      images)


@pytest.mark.parametrize("pe", (1, 2, 5, 10))
@pytest.mark.parametrize("bits", (2, 9, 12, 17, 32))
def test_vectors_equal_unpack_output_words(pe, bits):
    """Scores: word nf holds neurons nf*PE .. nf*PE + PE-1, two's complement; a longer buffer is cut to n images."""
    rng = np.random.default_rng(pe * 100 + bits)
    classes = 10
    word_bytes = -(-pe * bits // 8)
    for n in BATCHES:
        scores = random_fields(rng, (n, classes), bits, signed=True)
        packed = packing.pack_vectors(scores, pe, bits, word_bytes)
        buffer = np.concatenate([packed.reshape(-1), np.full(3 * word_bytes, 0xAB, np.uint8)])  # room for more
        words = dma_layout.bytes_to_words(packed, word_bytes, pe * bits)
        per_image = classes // pe
        expected = [packing.unpack_output_words(words[i * per_image:(i + 1) * per_image], pe, bits, True)
                    for i in range(n)]
        got = packing.unpack_vectors(buffer, n, classes, pe, bits, word_bytes, signed=True)
        assert got.shape == (n, classes)
        np.testing.assert_array_equal(got, np.array(expected, dtype=np.int64).reshape(n, classes))
        np.testing.assert_array_equal(got, scores)


@pytest.mark.parametrize("bits", (1, 5, 8, 12))
def test_cache_blocks_do_not_change_the_result(monkeypatch, bits):
    """Big batches are packed in blocks of BLOCK_FIELDS fields: tiny blocks (also smaller than a row) give the same."""
    rng = np.random.default_rng(40 + bits)
    vectors = random_fields(rng, (23, 50), bits, signed=bits > 8)
    word_bytes = -(-7 * bits // 8) + 1
    whole = packing.pack_vectors(vectors, 7, bits, word_bytes)
    fields = random_fields(rng, (3, 11, 7), bits, signed=bits > 8)
    whole_fields = packing.pack_fields_to_bytes(fields, bits, word_bytes)
    for block in (1, 5, 37, 350):
        monkeypatch.setattr(packing, "BLOCK_FIELDS", block)
        packed = packing.pack_vectors(vectors, 7, bits, word_bytes)
        np.testing.assert_array_equal(packed, whole)
        np.testing.assert_array_equal(packed.reshape(-1, word_bytes),
                                      per_word_bytes(packing.pad_vectors(vectors, 7).reshape(-1, 7), bits, word_bytes))
        np.testing.assert_array_equal(packing.unpack_vectors(packed, 23, 50, 7, bits, word_bytes, bits > 8), vectors)
        np.testing.assert_array_equal(packing.pack_fields_to_bytes(fields, bits, word_bytes), whole_fields)


@pytest.fixture(scope="module")
def odd_artifact(tmp_path_factory):
    """SIMD 7 of 5-bit pixels (35-bit input words, 50 features: padded), PE 5 of 6-bit scores (30-bit words)."""
    root = tmp_path_factory.mktemp("packing_fast") / "export"
    folding = [LayerFolding(pe=4, simd=7), LayerFolding(pe=5, simd=6)]
    return random_artifact(root, seed=9, input_features=50, hidden=(20,), classes=10, folding=folding, generate=())


@pytest.mark.parametrize("in_bytes,out_bytes", [(None, None), (8, 8), (16, 6)])
def test_dma_layout_equals_the_per_word_layout(odd_artifact, in_bytes, out_bytes):
    """dma_layout's buffers are byte-identical to pack_input_words / words_to_int + words_to_bytes."""
    a = odd_artifact
    first, last = a.layers[0], a.layers[-1]
    inp, out = dma_layout.input_port(a, in_bytes), dma_layout.output_port(a, out_bytes)
    rng = np.random.default_rng(11)
    for n in BATCHES:
        images = rng.integers(0, 32, size=(n, 50), dtype=np.uint8)
        words = [w for image in packing.pack_input_words(images, first.simd, first.input_bits) for w in image]
        data = dma_layout.pack_images(a, images, inp)
        np.testing.assert_array_equal(data, dma_layout.words_to_bytes(words, inp.word_bytes))
        assert data.size == n * inp.bytes_per_image
        np.testing.assert_array_equal(dma_layout.unpack_images(a, data, inp), images)
        scores = random_fields(rng, (n, 10), last.output_bits, signed=True)
        raw = dma_layout.pack_scores(a, scores, out)
        ref = dma_layout.words_to_bytes(packing.words_to_int(scores.reshape(-1, last.pe), last.output_bits),
                                        out.word_bytes)
        np.testing.assert_array_equal(raw, ref)
        np.testing.assert_array_equal(dma_layout.unpack_scores(a, raw, out, n), scores)


def test_layout_by_hand():
    """Three 5-bit fields: 1 | 2 << 5 | 31 << 10 = 0x7C41, little-endian, padded to 3 bytes."""
    assert packing.pack_fields_to_bytes(np.array([[1, 2, 31]]), 5, 3).tolist() == [[0x41, 0x7C, 0x00]]
    # two 12-bit scores -1 and 5: 0x005FFF
    assert packing.pack_fields_to_bytes(np.array([[-1, 5]]), 12, 3).tolist() == [[0xFF, 0x5F, 0x00]]
    assert packing.unpack_bytes_to_fields(np.array([0xFF, 0x5F, 0x00], np.uint8), 2, 12, 3, True).tolist() == [[-1, 5]]
    assert packing.unpack_bytes_to_fields(np.array([0xFF, 0x5F, 0x00], np.uint8), 2, 12, 3, False).tolist() == [
        [4095, 5]]


def test_errors_name_the_problem():
    fields = np.zeros((2, 3), np.int64)
    with pytest.raises(ValueError, match=r"word_bytes=1: a word of 3 fields of 5 bits has 15 bits and needs at "
                                         r"least 2 bytes"):
        packing.pack_fields_to_bytes(fields, 5, 1)
    with pytest.raises(ValueError, match="field_bits=65: stream fields are at most 64 bits"):
        packing.pack_fields_to_bytes(fields, 65, 30)
    with pytest.raises(ValueError, match="field_bits=0: expected a positive integer"):
        packing.pack_fields_to_bytes(fields, 0, 3)
    with pytest.raises(TypeError, match="fields must be integers, got dtype float64"):
        packing.pack_fields_to_bytes(fields.astype(float), 5, 2)
    with pytest.raises(ValueError, match="7 bytes is not a whole number of 2-byte words"):
        packing.unpack_bytes_to_fields(np.zeros(7, np.uint8), 3, 5, 2, False)
    with pytest.raises(TypeError, match="data must be a uint8 byte buffer, got dtype int64"):
        packing.unpack_bytes_to_fields(np.zeros(8, np.int64), 3, 5, 2, False)
    with pytest.raises(ValueError, match="unsigned 64-bit fields do not fit the int64 result"):
        packing.unpack_bytes_to_fields(np.zeros(8, np.uint8), 1, 64, 8, False)
    with pytest.raises(ValueError, match=r"30 bytes hold fewer than 4 vectors of 8 bytes \(4 words of 2 bytes\)"):
        packing.unpack_vectors(np.zeros(30, np.uint8), 4, 10, 3, 5, 2, False)
    with pytest.raises(ValueError, match=r"expected \(N, elements\) vectors, got shape \(784,\)"):
        packing.pack_vectors(np.zeros(784, np.uint8), 64, 8, 64)
