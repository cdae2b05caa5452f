"""How stream words sit in DMA buffers (the board's memory side of the streams).

The engine's streams are defined in docs/ARTIFACT.md ("Streams") and packed by
``bnnflow.packing`` -- this module never re-derives that layout. It only adds
the step from a stream word (a Python int of ``tdata_bits`` bits) to bytes in
a DMA buffer, and back:

- every word occupies ``word_bytes`` bytes, little-endian (bit ``b`` of the
  word is bit ``b % 8`` of byte ``b // 8``); the bits above ``tdata_bits`` are
  zero on the way in and ignored on the way out;
- words lie back to back, image after image, with no gaps; one image is SF
  words of the first layer in, NF words of the last layer out.

``word_bytes`` defaults to ``ceil(tdata_bits / 8)``, the TDATA width Vitis HLS
gives an ``ap_axiu<W>`` port. docs/DRIVER.md says what the block design must do
for that to hold (a stream width converter between the DMA and the engine).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnnflow import artifact as art
from bnnflow import packing

from . import options as opt


@dataclass(frozen=True)
class StreamPort:
    """One side of the accelerator as the DMA sees it."""

    tdata_bits: int        # meaningful bits per stream word
    word_bytes: int        # bytes each word occupies in a DMA buffer
    words_per_image: int   # SF of the first layer (in) or NF of the last layer (out)

    @property
    def bytes_per_image(self) -> int:
        return self.word_bytes * self.words_per_image


#: The widest AXI4-Stream of an AXI DMA (1024 bits): the most bytes a widened word can need.
MAX_DMA_STREAM_BYTES = 128


def _port(tdata_bits: int, words: int, word_bytes: int | None, side: str) -> StreamPort:
    """``word_bytes``: None (ceil(tdata_bits / 8)) or an override from the ``in_``/``out_word_bytes`` option."""
    minimum = -(-tdata_bits // 8)
    if word_bytes is None:
        return StreamPort(tdata_bits, minimum, words)
    name = {"input": "in_word_bytes", "output": "out_word_bytes"}[side]
    maximum = max(minimum, MAX_DMA_STREAM_BYTES)
    word_bytes = opt.check_int(name, word_bytes, none_ok=True)
    if not minimum <= word_bytes <= maximum:
        raise ValueError(f"option {name}={word_bytes}: {side} stream words have {tdata_bits} bits and need at least "
                         f"{minimum} bytes; expected an integer in {minimum}..{maximum} (a widened word is one beat "
                         f"of the DMA's stream, at most {MAX_DMA_STREAM_BYTES} bytes) or None")
    return StreamPort(tdata_bits, word_bytes, words)


def input_port(artifact: art.Artifact, word_bytes: int | None = None) -> StreamPort:
    """The accelerator's input: SF words of SIMD elements of input_bits per image."""
    first = artifact.layers[0]
    return _port(first.in_stream_bits, first.sf, word_bytes, "input")


def output_port(artifact: art.Artifact, word_bytes: int | None = None) -> StreamPort:
    """The accelerator's output: NF words of PE two's-complement scores per image."""
    last = artifact.layers[-1]
    return _port(last.out_stream_bits, last.nf, word_bytes, "output")


def words_to_bytes(words: list[int], word_bytes: int) -> np.ndarray:
    """Stream words -> a flat uint8 buffer, ``word_bytes`` little-endian bytes each."""
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
    """(N, F) unsigned images -> the MM2S buffer contents (uint8, N * bytes_per_image)."""
    first = artifact.layers[0]
    per_image = packing.pack_input_words(images, first.simd, first.input_bits)
    return words_to_bytes([w for image in per_image for w in image], port.word_bytes)


def unpack_images(artifact: art.Artifact, data: np.ndarray, port: StreamPort) -> np.ndarray:
    """Inverse of :func:`pack_images` (used by the simulated board): (N, F) int64."""
    first = artifact.layers[0]
    words = bytes_to_words(data, port.word_bytes, port.tdata_bits)
    n = len(words) // port.words_per_image
    fields = packing.int_to_fields(words, first.simd, first.input_bits, signed=False)
    return fields.reshape(n, -1)[:, :artifact.input_features]


def pack_scores(artifact: art.Artifact, scores: np.ndarray, port: StreamPort) -> np.ndarray:
    """(N, C) scores -> the bytes the engine writes (used by the simulated board)."""
    last = artifact.layers[-1]
    words = packing.words_to_int(np.asarray(scores).reshape(-1, last.pe), last.output_bits)
    return words_to_bytes(words, port.word_bytes)


def unpack_scores(artifact: art.Artifact, data: np.ndarray, port: StreamPort, count: int) -> np.ndarray:
    """The S2MM buffer contents of ``count`` images -> (count, num_classes) int64 scores."""
    last = artifact.layers[-1]
    data = np.asarray(data, dtype=np.uint8).reshape(-1)[:count * port.bytes_per_image]
    words = bytes_to_words(data, port.word_bytes, port.tdata_bits)
    scores = np.empty((count, artifact.num_classes), dtype=np.int64)
    for i in range(count):
        image_words = words[i * port.words_per_image:(i + 1) * port.words_per_image]
        scores[i] = packing.unpack_output_words(image_words, last.pe, last.output_bits, signed=True)
    return scores
