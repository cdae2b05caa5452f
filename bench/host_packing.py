#!/usr/bin/env python3
"""Host packing speed: the DMA buffers of a batch, vectorized vs the per-word code it replaced.

The board backend packs every image into the send buffer and unpacks every
score from the receive buffer on the host CPU (on a PYNQ-Z2, a Cortex-A9).
This times ``bnnflow.host.dma_layout.pack_images`` + ``unpack_scores`` (the
vectorized numpy path of ``bnnflow.packing``) on LFC-shaped data -- 784
pixels of 8 bits in (SIMD 64: 13 words of 64 bytes per image), 10 scores of
12 bits out (PE 10: one 15-byte word) by default -- against a frozen copy of
the pre-vectorization per-word implementation (Python ints per word), checks
that both give identical bytes and scores, and prints milliseconds and the
ratio. Figures are recorded in docs/PERFORMANCE.md ("Host packing").

    .venv/bin/python bench/host_packing.py
    .venv/bin/python bench/host_packing.py --input-bits 1 --images 2000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from typing import Callable

import numpy as np

from bnnflow.folding import LayerFolding
from bnnflow.host import dma_layout
from bnnflow.packing import pad_to_multiple
from bnnflow.testing import random_artifact

#: LFC (784-1024x3-10) with BNN-PYNQ's published folding as bench/throughput.py uses it, as (PE, SIMD) per layer.
LFC_FOLDING = [(32, 64), (64, 32), (32, 64), (10, 8)]


# -- pre-vectorization reference ------------------------------------------------------------------
# A frozen copy of the per-word host packing as it was before the vectorized path
# (bnnflow/packing.py words_to_int / int_to_fields / pack_input_words /
# unpack_output_words and host/dma_layout.py words_to_bytes / bytes_to_words /
# pack_images / unpack_scores): one Python int per stream word. Kept here only
# as the baseline to time and to compare bytes against; the library no longer
# packs DMA buffers this way.

def _ref_words_to_int(fields: np.ndarray, field_bits: int) -> list[int]:
    fields = np.asarray(fields, dtype=np.int64)
    mask = (1 << field_bits) - 1
    out = []
    for row in fields.reshape(-1, fields.shape[-1]):
        word = 0
        for k, value in enumerate(row.tolist()):
            word |= (int(value) & mask) << (k * field_bits)
        out.append(word)
    return out


def _ref_int_to_fields(words: list[int], count: int, field_bits: int, signed: bool) -> np.ndarray:
    mask = (1 << field_bits) - 1
    out = np.empty((len(words), count), dtype=np.int64)
    for r, word in enumerate(words):
        for k in range(count):
            value = (int(word) >> (k * field_bits)) & mask
            if signed and value >> (field_bits - 1):
                value -= 1 << field_bits
            out[r, k] = value
    return out


def _ref_pack_input_words(images: np.ndarray, simd: int, elem_bits: int) -> list[list[int]]:
    images = np.asarray(images, dtype=np.int64)
    n, features = images.shape
    padded = np.zeros((n, pad_to_multiple(features, simd)), dtype=np.int64)
    padded[:, :features] = images
    words = _ref_words_to_int(padded.reshape(n, -1, simd), elem_bits)
    sf = padded.shape[1] // simd
    return [words[i * sf:(i + 1) * sf] for i in range(n)]


def _ref_words_to_bytes(words: list[int], word_bytes: int) -> np.ndarray:
    raw = b"".join(int(w).to_bytes(word_bytes, "little") for w in words)
    return np.frombuffer(raw, dtype=np.uint8).copy()


def _ref_bytes_to_words(data: np.ndarray, word_bytes: int, tdata_bits: int) -> list[int]:
    data = np.asarray(data, dtype=np.uint8).reshape(-1)
    mask = (1 << tdata_bits) - 1
    raw = data.tobytes()
    return [int.from_bytes(raw[i:i + word_bytes], "little") & mask for i in range(0, len(raw), word_bytes)]


def reference_pack_images(artifact, images: np.ndarray, port: dma_layout.StreamPort) -> np.ndarray:
    first = artifact.layers[0]
    per_image = _ref_pack_input_words(images, first.simd, first.input_bits)
    return _ref_words_to_bytes([w for image in per_image for w in image], port.word_bytes)


def reference_unpack_scores(artifact, data: np.ndarray, port: dma_layout.StreamPort, count: int) -> np.ndarray:
    last = artifact.layers[-1]
    data = np.asarray(data, dtype=np.uint8).reshape(-1)[:count * port.bytes_per_image]
    words = _ref_bytes_to_words(data, port.word_bytes, port.tdata_bits)
    scores = np.empty((count, artifact.num_classes), dtype=np.int64)
    for i in range(count):
        image_words = words[i * port.words_per_image:(i + 1) * port.words_per_image]
        scores[i] = _ref_int_to_fields(image_words, last.pe, last.output_bits, signed=True).reshape(-1)
    return scores


# -- timing ------------------------------------------------------------------------------------------

def best_of(repeats: int, fn: Callable[[], object]) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds, result): the fastest of ``repeats`` calls by each clock.

    The minimum is the least disturbed run; the process's CPU time besides
    the wall time shows how much of a slow run was other processes' load.
    """
    wall = cpu = float("inf")
    result = None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time the host's DMA-buffer packing (pack_images + unpack_scores) on LFC-shaped data, "
                    "vectorized vs the pre-vectorization per-word code, and check both give identical "
                    "bytes and scores. Exit status 1 if they differ.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000, help="images in the batch")
    parser.add_argument("--input-bits", type=int, default=8, choices=range(1, 9), metavar="1..8",
                        help="bits per input pixel (LFC: 8; 1..7 take the sub-byte path)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs of the vectorized path; the fastest is reported")
    parser.add_argument("--baseline-repeats", type=int, default=1,
                        help="timed runs of the per-word baseline (seconds each for 10,000 images)")
    parser.add_argument("--target-ms", type=float, default=50.0,
                        help="budget for vectorized pack + unpack of the batch; reported as met or not")
    parser.add_argument("--seed", type=int, default=0, help="seed of the network, images and scores")
    args = parser.parse_args(argv)
    if args.images < 1 or args.repeats < 1 or args.baseline_repeats < 1:
        parser.error("--images, --repeats and --baseline-repeats must be positive")

    folding = [LayerFolding(pe=pe, simd=simd) for pe, simd in LFC_FOLDING]
    with tempfile.TemporaryDirectory() as tmp:
        artifact = random_artifact(f"{tmp}/lfc", seed=args.seed, input_features=784, hidden=(1024, 1024, 1024),
                                   classes=10, input_bits=args.input_bits, folding=folding, n_vectors=1,
                                   generate=())
    in_port, out_port = dma_layout.input_port(artifact), dma_layout.output_port(artifact)
    last = artifact.layers[-1]
    rng = np.random.default_rng(args.seed)
    images = rng.integers(0, 1 << args.input_bits, size=(args.images, 784), dtype=np.uint8)
    half = 1 << (last.output_bits - 1)
    scores = rng.integers(-half, half, size=(args.images, 10), dtype=np.int64)
    received = dma_layout.pack_scores(artifact, scores, out_port)  # what the engine would write

    new_pack, new_pack_cpu, new_bytes = best_of(args.repeats,
                                                lambda: dma_layout.pack_images(artifact, images, in_port))
    new_unpack, new_unpack_cpu, new_scores = best_of(
        args.repeats, lambda: dma_layout.unpack_scores(artifact, received, out_port, args.images))
    old_pack, _, old_bytes = best_of(args.baseline_repeats,
                                     lambda: reference_pack_images(artifact, images, in_port))
    old_unpack, _, old_scores = best_of(args.baseline_repeats,
                                        lambda: reference_unpack_scores(artifact, received, out_port, args.images))

    same_bytes = np.array_equal(new_bytes, old_bytes)
    same_scores = np.array_equal(new_scores, old_scores) and np.array_equal(new_scores, scores)
    print(f"{args.images} images: 784 x {args.input_bits}-bit pixels -> {in_port.words_per_image} words of "
          f"{in_port.word_bytes} bytes ({in_port.tdata_bits} TDATA bits) in; 10 scores of {last.output_bits} "
          f"bits -> {out_port.words_per_image} word(s) of {out_port.word_bytes} bytes out")
    print(f"{'':14}{'per-word ms':>13}{'vectorized ms':>15}{'(CPU ms)':>10}{'ratio':>8}")
    rows = (("pack_images", old_pack, new_pack, new_pack_cpu),
            ("unpack_scores", old_unpack, new_unpack, new_unpack_cpu),
            ("total", old_pack + old_unpack, new_pack + new_unpack, new_pack_cpu + new_unpack_cpu))
    for name, old, new, cpu in rows:
        print(f"{name:14}{old * 1e3:13.1f}{new * 1e3:15.2f}{cpu * 1e3:10.2f}{old / new:7.0f}x")
    total_ms = (new_pack + new_unpack) * 1e3
    print(f"vectorized: {args.images / (new_pack + new_unpack):,.0f} images/s of host packing; target "
          f"<= {args.target_ms:g} ms (wall): {'met' if total_ms <= args.target_ms else 'NOT met'} ({total_ms:.1f} ms)")
    print(f"identical bytes: {same_bytes}; identical scores: {same_scores}")
    return 0 if same_bytes and same_scores else 1


if __name__ == "__main__":
    sys.exit(main())
