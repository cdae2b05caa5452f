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
- A stream word of ``count`` fields of ``field_bits`` holds field ``j`` at bits
  ``[j*field_bits, (j+1)*field_bits)``, two's complement masked to the field.
  :func:`words_to_int`/:func:`int_to_fields` give it as a Python int (memory
  files, HLS literals, cocotb); :func:`pack_fields_to_bytes` /
  :func:`unpack_bytes_to_fields` give the same bits as ``word_bytes``
  little-endian bytes per word, vectorized, for the DMA buffers of the host.
"""

from __future__ import annotations

import numpy as np


def pad_to_multiple(n: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``n``."""
    return -(-n // multiple) * multiple


def fold_weight_codes(codes: np.ndarray, pe: int, simd: int, pad: int) -> np.ndarray:
    """Arrange a (MH, MW) matrix of weight codes as (PE, NF*SF, SIMD) lanes, padding MW with ``pad``.

    ``out[p, nf*SF + sf, j]`` is the code of neuron ``nf*pe + p`` on synapse
    ``sf*simd + j``; padded synapses hold ``pad`` (the encoding's zero-effect
    code, :func:`bnnflow.artifact.pad_weight_code`).
    """
    codes = np.asarray(codes, dtype=np.uint8)
    mh, mw = codes.shape
    if mh % pe:
        raise ValueError(f"PE={pe} does not divide the layer's {mh} neurons")
    mw_pad = pad_to_multiple(mw, simd)
    padded = np.full((mh, mw_pad), pad, dtype=np.uint8)
    padded[:, :mw] = codes
    nf, sf = mh // pe, mw_pad // simd
    # neuron n = nf_i*pe + p ; synapse i = sf_i*simd + j
    lanes = padded.reshape(nf, pe, sf, simd).transpose(1, 0, 2, 3)
    return np.ascontiguousarray(lanes.reshape(pe, nf * sf, simd))


def fold_weight_bits(weight_bits: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """:func:`fold_weight_codes` of a 0/1 matrix (1-bit weights): padded synapses are 1."""
    return fold_weight_codes(weight_bits, pe, simd, pad=1)


def unfold_weight_bits(lanes: np.ndarray, in_features: int) -> np.ndarray:
    """Inverse of :func:`fold_weight_codes`: (PE, NF*SF, SIMD) -> (MH, MW) (codes of any width)."""
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


def codes_to_word_bits(codes: np.ndarray, code_bits: int) -> np.ndarray:
    """(..., SIMD) codes -> (..., SIMD*code_bits) bits: lane j's bit b is word bit j*code_bits + b."""
    codes = np.asarray(codes, dtype=np.uint8)
    shifts = np.arange(code_bits, dtype=np.uint8)
    bits = (codes[..., None] >> shifts) & 1
    return bits.reshape(*codes.shape[:-1], codes.shape[-1] * code_bits).astype(np.uint8)


def word_bits_to_codes(bits: np.ndarray, simd: int, code_bits: int) -> np.ndarray:
    """Inverse of :func:`codes_to_word_bits` for the first ``simd * code_bits`` bits of the last axis."""
    bits = np.asarray(bits, dtype=np.uint8)[..., :simd * code_bits]
    planes = bits.reshape(*bits.shape[:-1], simd, code_bits)
    weights = (1 << np.arange(code_bits)).astype(np.uint16)
    return (planes.astype(np.uint16) @ weights).astype(np.uint8)


def lanes_to_bytes(lanes: np.ndarray) -> np.ndarray:
    """Pack the last axis (bits, LSB first) into little-endian bytes.

    (..., SIMD) bits -> (..., ceil(SIMD/8)) uint8: bit ``j`` of the word is bit
    ``j % 8`` of byte ``j // 8``.
    """
    return np.packbits(np.asarray(lanes, dtype=np.uint8), axis=-1, bitorder="little")


def codes_to_bytes(lanes: np.ndarray, code_bits: int) -> np.ndarray:
    """(..., SIMD) codes of ``code_bits`` -> (..., ceil(SIMD*code_bits/8)) little-endian bytes (Lk_weights.bin)."""
    return lanes_to_bytes(codes_to_word_bits(lanes, code_bits))


def bytes_to_codes(packed: np.ndarray, simd: int, code_bits: int) -> np.ndarray:
    """Inverse of :func:`codes_to_bytes`."""
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=-1, bitorder="little")
    return word_bits_to_codes(bits, simd, code_bits)


def fold_thresholds(thresholds: np.ndarray, pe: int) -> np.ndarray:
    """(MH,) or (MH, N) per-neuron values -> (PE, NF, N): PE ``p`` at address ``nf`` holds neuron ``nf*pe + p``.

    Used for thresholds (N per neuron) and score affines ((mul, add): N = 2).
    """
    values = np.asarray(thresholds)
    if values.ndim == 1:
        values = values[:, None]
    mh, n = values.shape
    if mh % pe:
        raise ValueError(f"PE={pe} does not divide the layer's {mh} neurons")
    return np.ascontiguousarray(values.reshape(mh // pe, pe, n).transpose(1, 0, 2))


def unfold_thresholds(folded: np.ndarray) -> np.ndarray:
    """Inverse of :func:`fold_thresholds`: (PE, NF, N) -> (MH, N)."""
    folded = np.asarray(folded)
    pe, nf, n = folded.shape
    return np.ascontiguousarray(folded.transpose(1, 0, 2).reshape(nf * pe, n))


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
    padded = pad_vectors(np.asarray(images, dtype=np.int64), simd)
    n, sf = padded.shape[0], padded.shape[1] // simd
    words = words_to_int(padded.reshape(n, sf, simd), elem_bits)
    return [words[i * sf:(i + 1) * sf] for i in range(n)]


def unpack_output_words(words: list[int], pe: int, elem_bits: int, signed: bool) -> np.ndarray:
    """Flat output vector from NF stream words of ``pe`` fields each (neuron nf*pe + p)."""
    return int_to_fields(words, pe, elem_bits, signed).reshape(-1)


def pad_vectors(vectors: np.ndarray, width: int) -> np.ndarray:
    """(N, L) -> (N, L padded to a multiple of ``width``), zeros appended, dtype kept.

    The zero padding of the last word of a vector (ARTIFACT.md, Padding): a
    pad element is 0, which adds nothing to any sum.
    """
    vectors = np.asarray(vectors)
    if vectors.ndim != 2:
        raise ValueError(f"expected (N, elements) vectors, got shape {vectors.shape}")
    n, length = vectors.shape
    full = pad_to_multiple(length, width)
    if full == length:
        return vectors
    padded = np.zeros((n, full), dtype=vectors.dtype)
    padded[:, :length] = vectors
    return padded


# -- stream words as bytes (vectorized; the DMA buffers of the host) ---------------

#: Widest field the byte functions take: fields travel as (u)int64.
MAX_FIELD_BITS = 64
#: Fields handled per step. A block's uint8 working arrays (256 KB) stay in the CPU's L2 cache (512 KB on
#: a PYNQ-Z2's Cortex-A9), so the several numpy passes over a block are about twice as fast as passes over
#: a whole 10,000-image batch (measured on the development machine; the result does not depend on it).
BLOCK_FIELDS = 1 << 18


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}={value!r}: expected a positive integer")


def _check_word(count: int, field_bits: int, word_bytes: int) -> None:
    """``count`` fields of ``field_bits`` must fit in ``word_bytes`` bytes."""
    _check_positive(count=count, field_bits=field_bits, word_bytes=word_bytes)
    if field_bits > MAX_FIELD_BITS:
        raise ValueError(f"field_bits={field_bits}: stream fields are at most {MAX_FIELD_BITS} bits (int64 values)")
    need = -(-count * field_bits // 8)
    if word_bytes < need:
        raise ValueError(f"word_bytes={word_bytes}: a word of {count} fields of {field_bits} bits has "
                         f"{count * field_bits} bits and needs at least {need} bytes")


def _integer_fields(fields: np.ndarray) -> np.ndarray:
    """``fields`` as an integer array with a last axis (bool counts as 0/1); anything else is refused."""
    arr = np.asarray(fields)
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"fields must be integers, got dtype {arr.dtype}")
    if arr.ndim < 1:
        raise ValueError(f"fields must have a last axis of fields per word, got a scalar of shape {arr.shape}")
    return arr


def _blocks(rows: int, per_row: int):
    """Row slices of about :data:`BLOCK_FIELDS` fields each, covering ``range(rows)``."""
    step = max(1, BLOCK_FIELDS // max(1, per_row))
    return (slice(start, min(rows, start + step)) for start in range(0, rows, step))


def pack_fields_to_bytes(fields: np.ndarray, field_bits: int, word_bytes: int) -> np.ndarray:
    """(..., count) integer fields -> (..., word_bytes) uint8: one stream word per row, little-endian.

    Bit ``b`` of the word (field ``b // field_bits``, the same bits as
    :func:`words_to_int`) is bit ``b % 8`` of byte ``b // 8``; every value is
    masked to ``field_bits`` (two's complement), bits from ``count*field_bits``
    up to ``8*word_bytes`` are zero. Vectorized because a host packs every
    pixel of every image this way: the per-word Python ints of
    :func:`words_to_int` cost ~0.5 ms per LFC image, more than the accelerator.
    """
    arr = _integer_fields(fields)
    count, lead = arr.shape[-1], arr.shape[:-1]
    _check_word(count, field_bits, word_bytes)
    rows = arr.reshape(-1, count)
    out = np.empty((rows.shape[0], word_bytes), dtype=np.uint8)
    for block in _blocks(rows.shape[0], count):
        _pack_rows(rows[block], field_bits, out[block])
    return out.reshape(*lead, word_bytes)


def _pack_rows(rows: np.ndarray, field_bits: int, out: np.ndarray) -> None:
    """Write (r, count) integer fields as words into ``out`` (r, word_bytes)."""
    count = rows.shape[1]
    nb = -(-field_bits // 8)  # bytes that hold one field
    if rows.dtype.itemsize < nb:  # sign-extend (signed) or zero-extend (unsigned), as int64 conversion would
        rows = rows.astype(np.int64 if rows.dtype.kind == "i" else np.uint64)
    # the little-endian bytes of each value: its low nb bytes are the value masked to 8*nb bits
    rows = np.ascontiguousarray(rows, dtype=rows.dtype.newbyteorder("<"))
    raw = rows.view(np.uint8).reshape(rows.shape[0], count, rows.dtype.itemsize)[..., :nb]
    used = -(-count * field_bits // 8)  # bytes the fields occupy; the rest of the word is zero
    out[:, used:] = 0
    if field_bits % 8 == 0:  # byte-aligned fields are their bytes, back to back
        out[:, :used] = raw.reshape(rows.shape[0], used)
    elif field_bits < 8:  # narrow fields (the input pixels): 8 fields make field_bits whole bytes
        out[:, :used] = _pack_narrow(raw[..., 0], field_bits)[:, :used]
    else:  # wider, unaligned fields (scores): through a bit array, each field's low field_bits bits in a row
        bits = np.unpackbits(raw, axis=-1, bitorder="little")[..., :field_bits]
        out[:, :used] = np.packbits(bits.reshape(rows.shape[0], count * field_bits), axis=-1, bitorder="little")


def _byte_heads(buffer: np.ndarray, keep: int, stride: int) -> np.ndarray:
    """The first ``keep`` bytes of every ``stride``-byte record of a contiguous uint8 ``buffer``, one void item each.

    A view: copying it out (or assigning into it) moves ``keep`` bytes per
    record in one numpy loop, several times faster than slicing a
    (records, stride) array to (records, keep).
    """
    record = np.dtype({"names": ["head"], "formats": [f"V{keep}"], "offsets": [0], "itemsize": stride})
    return buffer.reshape(-1).view(record)["head"]


def _lanes(period: int) -> int:
    """A 64-bit pattern with bit 0 of every ``period``-bit lane set."""
    return sum(1 << k for k in range(0, 64, period))


def _pack_narrow(values: np.ndarray, field_bits: int) -> np.ndarray:
    """(r, count) uint8 values -> (r, ceil(count/8) * field_bits) bytes, for ``field_bits`` < 8.

    Fields ``8g .. 8g+7`` fill bytes ``g*field_bits .. (g+1)*field_bits - 1``
    exactly. Read as one little-endian uint64, a group of 8 uint8 fields has
    field ``j`` at bit ``8j``; three shift-and-merge steps (pairs, quads,
    the whole group) move it to bit ``j*field_bits``, and the low
    ``field_bits`` bytes are the packed bytes. In-place uint64 arithmetic on
    contiguous arrays: no per-bit arrays, few temporaries.
    """
    if field_bits == 1:
        return np.packbits(values & 1, axis=-1, bitorder="little")
    r, count = values.shape
    groups = -(-count // 8)
    full = np.zeros((r, groups * 8), dtype=np.uint8)
    full[:, :count] = values
    x = full.view("<u8")  # (r, groups): byte j of a group is field j
    x &= np.uint64(((1 << field_bits) - 1) * _lanes(8))  # mask every field to field_bits
    hi = np.empty_like(x)
    for lane in (8, 16, 32):  # each lane of 2*lane bits: merge its upper half down onto the lower half's bits
        held = field_bits * lane // 8  # bits each half-lane holds at its bottom
        keep = np.uint64(((1 << lane) - 1) * _lanes(2 * lane))
        np.bitwise_and(x, ~keep, out=hi)
        hi >>= np.uint64(lane - held)
        x &= keep
        x |= hi
    packed = _byte_heads(full, field_bits, 8).copy()  # the 8*field_bits bits at the bottom of each group
    return packed.view(np.uint8).reshape(r, groups * field_bits)


def _unpack_narrow(words: np.ndarray, count: int, field_bits: int) -> np.ndarray:
    """Inverse of :func:`_pack_narrow`: (r, bytes) words -> (r, count) uint8 fields."""
    r = words.shape[0]
    if field_bits == 1:
        return np.unpackbits(words, axis=-1, count=count, bitorder="little")
    groups = -(-count // 8)
    used = -(-count * field_bits // 8)
    grouped = np.zeros((r, groups * field_bits), dtype=np.uint8)
    grouped[:, :used] = words[:, :used]
    full = np.zeros((r, groups, 8), dtype=np.uint8)
    _byte_heads(full, field_bits, 8)[...] = grouped.reshape(-1).view(f"V{field_bits}")
    x = full.view("<u8")  # (r, groups, 1): 8 fields in the low 8*field_bits bits
    hi = np.empty_like(x)
    for lane in (32, 16, 8):  # the steps of _pack_narrow backwards: split each lane's bits into two halves
        held = field_bits * lane // 8
        mask = np.uint64(((1 << held) - 1) * _lanes(2 * lane))
        np.right_shift(x, np.uint64(held), out=hi)
        hi &= mask
        hi <<= np.uint64(lane)
        x &= mask
        x |= hi
    return full.reshape(r, groups * 8)[:, :count]  # byte j of a group is field j again


def unpack_bytes_to_fields(data: np.ndarray, count: int, field_bits: int, word_bytes: int,
                           signed: bool) -> np.ndarray:
    """Inverse of :func:`pack_fields_to_bytes`: uint8 words back to back -> (words, count) int64.

    ``data`` (any shape, read flat) holds whole words of ``word_bytes`` bytes;
    only the low ``count*field_bits`` bits of each word are read (the rest,
    e.g. a widened word's padding, are ignored). ``signed`` reads two's
    complement, else unsigned (an unsigned 64-bit field does not fit int64
    and is refused). Equals :func:`int_to_fields` of the words' ints.
    """
    arr = np.asarray(data)
    if arr.dtype != np.uint8:
        raise TypeError(f"data must be a uint8 byte buffer, got dtype {arr.dtype}")
    _check_word(count, field_bits, word_bytes)
    if field_bits == 64 and not signed:
        raise ValueError("unsigned 64-bit fields do not fit the int64 result; read them signed")
    flat = arr.reshape(-1)
    if flat.size % word_bytes:
        raise ValueError(f"{flat.size} bytes is not a whole number of {word_bytes}-byte words")
    words = flat.reshape(-1, word_bytes)
    out = np.empty((words.shape[0], count), dtype=np.int64)
    for block in _blocks(words.shape[0], count):
        out[block] = _unpack_rows(words[block], count, field_bits, signed)
    return out


def _unpack_rows(words: np.ndarray, count: int, field_bits: int, signed: bool) -> np.ndarray:
    """(r, word_bytes) words -> (r, count) int64 fields."""
    r = words.shape[0]
    nb = -(-field_bits // 8)
    used = -(-count * field_bits // 8)  # bytes holding fields; the rest of the word is ignored
    if field_bits % 8 == 0 or field_bits < 8 or field_bits > 57:
        if field_bits % 8 == 0:  # byte-aligned: each field is nb bytes of its own
            raw = words[:, :count * nb].reshape(r, count, nb)
        elif field_bits < 8:  # narrow (input pixels): 8 fields to a group of field_bits bytes
            raw = _unpack_narrow(words, count, field_bits).reshape(r, count, 1)
        else:  # 58..63 bits: regroup the word's bits into one zero-extended nb-byte group per field
            bits = np.unpackbits(words[:, :used], axis=-1, bitorder="little")[:, :count * field_bits]
            raw = np.packbits(bits.reshape(r, count, field_bits), axis=-1, bitorder="little")
        if nb in (1, 2, 4, 8):
            values = np.ascontiguousarray(raw).view(f"<u{nb}").reshape(r, count).astype(np.uint64)
        else:
            wide = np.zeros((r, count, 8), dtype=np.uint8)
            wide[..., :nb] = raw
            values = wide.view("<u8").reshape(r, count)
    else:  # 9..57 bits, unaligned (scores): a field lies within the 8 bytes from its first byte
        offsets = np.arange(count) * field_bits
        padded = np.zeros((r, used + 8), dtype=np.uint8)
        padded[:, :used] = words[:, :used]
        eight = np.ascontiguousarray(padded[:, (offsets // 8)[:, None] + np.arange(8)])  # (r, count, 8): a gather
        values = eight.view("<u8").reshape(r, count) >> (offsets % 8).astype(np.uint64)
        values &= np.uint64((1 << field_bits) - 1)
    values = values.view(np.int64)  # < 2**field_bits <= 2**63 here unless field_bits is 64 (signed)
    if signed and field_bits < 64:
        shift = 64 - field_bits  # sign-extend: the field's top bit to bit 63, arithmetic shift back
        values = (values << shift) >> shift
    return values


def pack_vectors(vectors: np.ndarray, width: int, field_bits: int, word_bytes: int) -> np.ndarray:
    """(N, L) vectors -> (N, ceil(L/width) * word_bytes) uint8: each vector as its stream words' bytes.

    Element ``i`` is field ``i % width`` of word ``i // width`` (the layout of
    :func:`pack_input_words`, ``width`` = SIMD, or of an output stream,
    ``width`` = PE), the last word zero-padded. ``DMA buffer = pack_vectors(...).reshape(-1)``.
    """
    vectors = _integer_fields(vectors)
    if vectors.ndim != 2:
        raise ValueError(f"expected (N, elements) vectors, got shape {vectors.shape}")
    _check_positive(width=width)
    _check_word(width, field_bits, word_bytes)
    n, length = vectors.shape
    words = -(-length // width)
    out = np.empty((n, words * word_bytes), dtype=np.uint8)
    for block in _blocks(n, words * width):  # pad and pack a cache-sized block of vectors at a time
        padded = pad_vectors(vectors[block], width)
        rows = padded.shape[0]
        packed = pack_fields_to_bytes(padded.reshape(rows, words, width), field_bits, word_bytes)
        out[block] = packed.reshape(rows, words * word_bytes)
    return out


def unpack_vectors(data: np.ndarray, n: int, length: int, width: int, field_bits: int, word_bytes: int,
                   signed: bool) -> np.ndarray:
    """The first ``n`` vectors of ``length`` elements in ``data`` -> (n, length) int64; inverse of :func:`pack_vectors`.

    ``data`` may be longer (a DMA buffer sized for a larger batch): only its
    first ``n * ceil(length/width) * word_bytes`` bytes are read.
    """
    for name, value, low in (("n", n, 0), ("length", length, 1), ("width", width, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name}={value!r}: expected an integer >= {low}")
    flat = np.asarray(data).reshape(-1)
    words = -(-length // width)
    per_vector = words * word_bytes
    if flat.size < n * per_vector:
        raise ValueError(f"{flat.size} bytes hold fewer than {n} vectors of {per_vector} bytes "
                         f"({words} words of {word_bytes} bytes)")
    fields = unpack_bytes_to_fields(flat[:n * per_vector], width, field_bits, word_bytes, signed)
    return fields.reshape(n, words * width)[:, :length]
