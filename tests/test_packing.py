"""The bit layout: round trips (property-based) and hand-checked words."""

import numpy as np
from hypothesis import given, settings, strategies as st

from bnnflow import packing


@settings(max_examples=60, deadline=None)
@given(mh_per_pe=st.integers(1, 6), pe=st.integers(1, 5), mw=st.integers(1, 70), simd=st.integers(1, 70),
       seed=st.integers(0, 2**16))
def test_weight_fold_round_trip(mh_per_pe, pe, mw, simd, seed):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, size=(mh_per_pe * pe, mw), dtype=np.uint8)
    lanes = packing.fold_weight_bits(bits, pe, simd)
    sf = packing.pad_to_multiple(mw, simd) // simd
    assert lanes.shape == (pe, mh_per_pe * sf, simd)
    assert np.array_equal(packing.unfold_weight_bits(lanes, mw), bits)
    raw = packing.lanes_to_bytes(lanes)
    assert raw.shape[-1] == -(-simd // 8)
    assert np.array_equal(packing.bytes_to_codes(raw, simd, 1), lanes)
    # padded synapses are +1 (bit 1) so XNOR with a 0 pad input is 0
    padded = lanes.reshape(pe, mh_per_pe, sf * simd)[:, :, mw:]
    assert padded.size == 0 or padded.all()


@settings(max_examples=40, deadline=None)
@given(nf=st.integers(1, 8), pe=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_threshold_fold_round_trip(nf, pe, seed):
    rng = np.random.default_rng(seed)
    t = rng.integers(-1000, 1000, size=nf * pe)
    folded = packing.fold_thresholds(t, pe)
    assert folded.shape == (pe, nf, 1)
    assert folded[pe - 1, nf - 1, 0] == t[-1] and folded[0, 0, 0] == t[0]
    assert np.array_equal(packing.unfold_thresholds(folded), t[:, None])
    many = rng.integers(-1000, 1000, size=(nf * pe, 3))     # N thresholds per neuron: [p, nf, t]
    folded = packing.fold_thresholds(many, pe)
    assert folded.shape == (pe, nf, 3)
    assert all(folded[n % pe, n // pe, k] == many[n, k] for n in range(nf * pe) for k in range(3))
    assert np.array_equal(packing.unfold_thresholds(folded), many)


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 8), simd=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_weight_codes_round_trip(k, simd, seed):
    """Lane j's code is at word bits [j*K, (j+1)*K), LSB first, bytes little-endian (docs/ARTIFACT.md)."""
    codes = np.random.default_rng(seed).integers(0, 1 << k, size=(3, 5, simd), dtype=np.uint8)
    packed = packing.codes_to_bytes(codes, k)
    assert packed.shape == (3, 5, -(-simd * k // 8))
    word = int.from_bytes(packed[1, 2].tobytes(), "little")
    assert [(word >> (j * k)) & ((1 << k) - 1) for j in range(simd)] == codes[1, 2].tolist()
    assert np.array_equal(packing.bytes_to_codes(packed, simd, k), codes)


@settings(max_examples=40, deadline=None)
@given(count=st.integers(1, 9), bits=st.integers(1, 12), signed=st.booleans(), seed=st.integers(0, 2**16))
def test_words_round_trip(count, bits, signed, seed):
    rng = np.random.default_rng(seed)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1))) if signed else (0, 1 << bits)
    fields = rng.integers(lo, hi, size=(5, count))
    words = packing.words_to_int(fields, bits)
    assert all(0 <= w < (1 << (bits * count)) for w in words)
    assert np.array_equal(packing.int_to_fields(words, count, bits, signed), fields)


def test_layout_by_hand():
    # 4 neurons x 3 synapses, PE=2, SIMD=2: MW pads to 4, SF=2, NF=2
    bits = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=np.uint8)
    lanes = packing.fold_weight_bits(bits, pe=2, simd=2)
    # PE0 holds neurons 0 and 2, PE1 neurons 1 and 3; address nf*SF + sf
    assert lanes[0].tolist() == [[1, 0], [0, 1], [0, 0], [1, 1]]
    assert lanes[1].tolist() == [[0, 1], [0, 1], [1, 1], [0, 1]]
    # LSB-first words: lane j is bit j
    assert packing.words_to_int(lanes[0], 1) == [0b01, 0b10, 0b00, 0b11]
    assert packing.lanes_to_bytes(lanes[1]).ravel().tolist() == [0b10, 0b10, 0b11, 0b10]


def test_input_words():
    images = np.array([[1, 2, 3, 4, 5]])
    words = packing.pack_input_words(images, simd=2, elem_bits=4)
    assert words == [[0x21, 0x43, 0x05]]   # element 0 in the low nibble, zero padding at the end
    assert packing.unpack_output_words([0x21, 0x43], pe=2, elem_bits=4, signed=False).tolist() == [1, 2, 3, 4]
    assert packing.unpack_output_words([0xF1], pe=2, elem_bits=4, signed=True).tolist() == [1, -1]
