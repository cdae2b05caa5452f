"""How stream words sit in DMA buffers (the board's memory side of the streams).

The accelerator interface (docs/ACCEL.md, ``bnnflow.accel``) fixes the
layout: TDATA is a power-of-two beat of 32..1024 bits, an engine word takes
``beats_per_word`` beats (lowest bits first), the bits above the word are zero
padding, and in a DMA buffer every word therefore occupies
``accel.Stream.word_bytes`` bytes, little-endian, words back to back, image
after image. The engine words themselves are docs/ARTIFACT.md's "Streams",
packed by ``bnnflow.packing``: this module never re-derives either layout. It
takes the widths from the artifact (SIMD/PE, element bits) and the word bytes
from ``bnnflow.accel`` and hands them to ``packing.pack_vectors`` /
``unpack_vectors`` (vectorized numpy), which write and read the words
straight as bytes of a DMA buffer; padding is zero on the way in and ignored
on the way out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnnflow import accel
from bnnflow import artifact as art
from bnnflow import packing

from . import options as opt


@dataclass(frozen=True)
class StreamPort:
    """One side of the accelerator as the DMA sees it."""

    tdata_bits: int        # meaningful bits per engine word (the rest of its beats is padding)
    word_bytes: int        # bytes each word occupies in a DMA buffer
    words_per_image: int   # SF of the first layer (in) or NF of the last layer (out)

    @property
    def bytes_per_image(self) -> int:
        return self.word_bytes * self.words_per_image


def _port(stream: accel.Stream, word_bytes: int | None) -> StreamPort:
    """``stream`` as a port; ``word_bytes`` None is the accelerator's layout (``stream.word_bytes``).

    Another ``word_bytes`` (at least ``ceil(word_bits / 8)``) lays the same
    words out with other padding: for tests and tools that compare layouts;
    the driver always uses the accelerator's.
    """
    if word_bytes is None:
        return StreamPort(stream.word_bits, stream.word_bytes, stream.words_per_image)
    minimum = -(-stream.word_bits // 8)
    word_bytes = opt.check_int("word_bytes", word_bytes)
    if word_bytes < minimum:
        raise ValueError(f"word_bytes={word_bytes}: stream words have {stream.word_bits} bits and need at least "
                         f"{minimum} bytes")
    return StreamPort(stream.word_bits, word_bytes, stream.words_per_image)


def input_port(artifact: art.Artifact, word_bytes: int | None = None) -> StreamPort:
    """The accelerator's input: SF words of SIMD elements of input_bits per image (``accel.input_stream``)."""
    return _port(accel.input_stream(artifact), word_bytes)


def output_port(artifact: art.Artifact, word_bytes: int | None = None) -> StreamPort:
    """The accelerator's output: NF words of PE two's-complement scores per image (``accel.output_stream``)."""
    return _port(accel.output_stream(artifact), word_bytes)


def words_to_bytes(words: list[int], word_bytes: int) -> np.ndarray:
    """Stream words as Python ints -> a flat uint8 buffer, ``word_bytes`` little-endian bytes each.

    The per-word form of the layout, for tests and tools that hold words as
    ints (cocotb, memory files); the driver packs with :func:`pack_images`.
    """
    raw = b"".join(int(w).to_bytes(word_bytes, "little") for w in words)
    return np.frombuffer(raw, dtype=np.uint8).copy()


def bytes_to_words(data: np.ndarray, word_bytes: int, tdata_bits: int) -> list[int]:
    """Inverse of :func:`words_to_bytes`; bits above ``tdata_bits`` are dropped."""
    data = np.asarray(data, dtype=np.uint8).reshape(-1)
    if data.size % word_bytes:
        raise ValueError(f"{data.size} bytes is not a whole number of {word_bytes}-byte words")
    mask = (1 << tdata_bits) - 1
    raw = data.tobytes()
    return [int.from_bytes(raw[i:i + word_bytes], "little") & mask for i in range(0, len(raw), word_bytes)]


def pack_images(artifact: art.Artifact, images: np.ndarray, port: StreamPort) -> np.ndarray:
    """(N, F) unsigned images -> the MM2S buffer contents (uint8, N * bytes_per_image).

    Integer images of any dtype; pass uint8 (what ``BnnDriver.check_images``
    returns) for the fastest path. Values are masked to ``input_bits``.
    """
    first = artifact.layers[0]
    return packing.pack_vectors(images, first.simd, first.input_bits, port.word_bytes).reshape(-1)


def unpack_images(artifact: art.Artifact, data: np.ndarray, port: StreamPort) -> np.ndarray:
    """Inverse of :func:`pack_images` (used by the simulated board): (N, F) int64."""
    first = artifact.layers[0]
    data = np.asarray(data, dtype=np.uint8).reshape(-1)
    if data.size % port.word_bytes:
        raise ValueError(f"{data.size} bytes is not a whole number of {port.word_bytes}-byte words")
    n = data.size // port.bytes_per_image
    return packing.unpack_vectors(data, n, artifact.input_features, first.simd, first.input_bits, port.word_bytes,
                                  signed=False)


def pack_scores(artifact: art.Artifact, scores: np.ndarray, port: StreamPort) -> np.ndarray:
    """(N, C) scores -> the bytes the engine writes (used by the simulated board)."""
    last = artifact.layers[-1]
    words = np.asarray(scores).reshape(-1, last.pe)  # C = NF * PE: word nf holds neurons nf*PE .. nf*PE + PE-1
    return packing.pack_fields_to_bytes(words, last.output_bits, port.word_bytes).reshape(-1)


def unpack_scores(artifact: art.Artifact, data: np.ndarray, port: StreamPort, count: int) -> np.ndarray:
    """The first ``count`` images' scores in an S2MM buffer -> (count, num_classes) int64.

    Two's complement when the last layer's scores are signed (an ``xnor_score``
    layer, docs/ARTIFACT.md), as the RTL testbench reads them.
    """
    last = artifact.layers[-1]
    return packing.unpack_vectors(data, count, artifact.num_classes, last.pe, last.output_bits, port.word_bytes,
                                  signed=last.output_signed)
