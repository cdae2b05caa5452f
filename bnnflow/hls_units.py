"""C-simulate the HLS convolution units (``hls/bnn_conv.hpp``) with g++, one setting at a time.

A setting is :class:`SlidingWindow` or :class:`MaxPool`: a geometry of
:mod:`bnnflow.conv` plus the stream word (SIMD / PE elements of
``elem_bits``). :func:`build` compiles ``hls/bnn_conv_tb.cpp`` for a batch
of settings into one binary (g++ is the cost, the runs take milliseconds),
cached like :mod:`bnnflow.hlsflow`'s testbench under a hash of every input;
:func:`run` feeds one unit a batch of feature maps as pixel-stream words and
returns the words it wrote. The words are packed and unpacked by
:mod:`bnnflow.packing`, the one definition of the stream layout, and the
tests compare them with :func:`bnnflow.conv.im2col` / :func:`bnnflow.conv.max_pool`
packed the same way (:func:`expected_words`).

Settings the templates' ``static_assert`` would refuse (channels not a
multiple of SIMD, pad >= kernel, a map smaller than the window, a pad code
wider than the elements) raise ValueError here first, naming the value.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from . import packing
from .conv import ConvGeometry, PoolGeometry, channel_folds, im2col, max_pool
from .hlsflow import HlsToolError, build_fingerprint, compile_binary, find_ap_include, find_compiler, hls_source_dir

#: The sources of a unit build (in hls/).
UNIT_SOURCES = ("bnn_conv.hpp", "bnn_conv_tb.cpp")
#: The compiler flags (as hlsflow's, without the layer taps of the network testbench).
CXX_FLAGS = ("-std=c++14", "-O1", "-w")
#: The generated header that lists a build's settings.
UNITS_HEADER = "bnn_conv_units.h"
#: Default cache of unit builds: content-hashed, so one machine-wide folder is safe to share.
DEFAULT_BUILD_DIR = Path(tempfile.gettempdir()) / "bnnflow-hls-units"
#: Widest element the tests and the byte packing take (a stream field travels as int64).
MAX_ELEM_BITS = 32


def _positive(what: str, **values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{what}: {name} must be a positive integer, got {value!r}")


def _folds(what: str, channels: int, per_word: int, name: str) -> None:
    try:
        channel_folds(channels, per_word, name)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


@dataclass(frozen=True)
class SlidingWindow:
    """bnn::sliding_window<IFM_H, IFM_W, CH, K, PAD, SIMD, ELEM_BITS, PAD_CODE>."""

    geom: ConvGeometry
    simd: int
    elem_bits: int
    pad_code: int = 0

    def __post_init__(self) -> None:
        _positive("sliding window", elem_bits=self.elem_bits)
        if self.elem_bits > MAX_ELEM_BITS:
            raise ValueError(f"sliding window: elem_bits must be at most {MAX_ELEM_BITS}, got {self.elem_bits}")
        _folds("sliding window", self.geom.channels, self.simd, "simd")
        if isinstance(self.pad_code, bool) or not isinstance(self.pad_code, (int, np.integer)) \
                or not 0 <= self.pad_code < (1 << self.elem_bits):
            raise ValueError(f"sliding window: pad_code must be a code in 0..{(1 << self.elem_bits) - 1} "
                             f"(elem_bits={self.elem_bits}), got {self.pad_code!r}")

    @property
    def folds(self) -> int:
        return self.geom.channels // self.simd

    @property
    def in_words(self) -> int:
        """Input words per image (conv.ConvGeometry.stream_words)."""
        return self.geom.stream_words(self.simd)[0]

    @property
    def out_words(self) -> int:
        """Output words per image: one im2col vector of K*K*CH/SIMD words per output pixel."""
        return self.geom.stream_words(self.simd)[1]

    @property
    def fill(self) -> int:
        """The stated bound on the loop iterations beyond ``images * out_words`` (WindowGeometry::FILL)."""
        g = self.geom
        return ((g.kernel - 1 - g.pad) * g.ifm_w + (g.kernel - g.pad)) * self.folds + 1

    @property
    def buffer_words(self) -> int:
        """The line buffer depth in words (WindowGeometry::DEPTH)."""
        g = self.geom
        window = (g.kernel - 1) * g.ifm_w + g.kernel
        overlap = 2 * (g.kernel - 1 - g.pad) * g.ifm_w + 2 * (g.kernel - g.pad)
        return self.folds * max(window, overlap)

    @property
    def word_elems(self) -> int:
        return self.simd

    def cpp(self) -> str:
        g = self.geom
        return (f"SlidingWindowUnit<{g.ifm_h}, {g.ifm_w}, {g.channels}, {g.kernel}, {g.pad}, {self.simd}, "
                f"{self.elem_bits}, {self.pad_code}>")


@dataclass(frozen=True)
class MaxPool:
    """bnn::max_pool<IFM_H, IFM_W, CH, POOL, PE, ELEM_BITS>."""

    geom: PoolGeometry
    pe: int
    elem_bits: int

    def __post_init__(self) -> None:
        _positive("max-pool", elem_bits=self.elem_bits)
        if self.elem_bits > MAX_ELEM_BITS:
            raise ValueError(f"max-pool: elem_bits must be at most {MAX_ELEM_BITS}, got {self.elem_bits}")
        _folds("max-pool", self.geom.channels, self.pe, "pe")

    @property
    def folds(self) -> int:
        return self.geom.channels // self.pe

    @property
    def in_words(self) -> int:
        return self.geom.stream_words(self.pe)[0]

    @property
    def out_words(self) -> int:
        return self.geom.stream_words(self.pe)[1]

    @property
    def buffer_words(self) -> int:
        """The accumulator row in words: OFM_W * CH/PE."""
        return self.geom.ofm_w * self.folds

    @property
    def word_elems(self) -> int:
        return self.pe

    def cpp(self) -> str:
        g = self.geom
        return f"MaxPoolUnit<{g.ifm_h}, {g.ifm_w}, {g.channels}, {g.pool}, {self.pe}, {self.elem_bits}>"


Setting = Union[SlidingWindow, MaxPool]


def _word_bytes(setting: Setting) -> int:
    return -(-setting.word_elems * setting.elem_bits // 8)


def pixel_words(setting: Setting, fmaps: np.ndarray) -> np.ndarray:
    """(N, H, W, C) codes -> the unit's input stream, (N*H*W*C/P, word bytes) uint8.

    Pixel by pixel, row-major; each pixel's C channels are C/P words of P
    (SIMD or PE) elements (:func:`bnnflow.packing.pack_vectors`).
    """
    g = setting.geom
    fmaps = np.asarray(fmaps)
    if fmaps.ndim != 4 or fmaps.shape[1:] != (g.ifm_h, g.ifm_w, g.channels):
        raise ValueError(f"feature maps have shape {fmaps.shape}, the unit takes (N, {g.ifm_h}, {g.ifm_w}, "
                         f"{g.channels}) (N, H, W, C)")
    if not np.issubdtype(fmaps.dtype, np.integer):
        raise ValueError(f"feature maps must hold integer codes, got dtype {fmaps.dtype}")
    if fmaps.size and (fmaps.min() < 0 or fmaps.max() >= (1 << setting.elem_bits)):
        raise ValueError(f"a feature map code is outside 0..{(1 << setting.elem_bits) - 1} "
                         f"(elem_bits={setting.elem_bits})")
    return _vector_words(setting, fmaps.reshape(-1, g.channels))


def _vector_words(setting: Setting, vectors: np.ndarray) -> np.ndarray:
    """(M, L) vectors of whole words -> (M*L/P, word bytes) uint8."""
    nbytes = _word_bytes(setting)
    return packing.pack_vectors(vectors, setting.word_elems, setting.elem_bits, nbytes).reshape(-1, nbytes)


def expected_words(setting: Setting, fmaps: np.ndarray) -> np.ndarray:
    """The words the unit must write for ``fmaps``: conv.im2col / conv.max_pool, packed as the unit's output.

    Sliding window: one im2col vector per output pixel, row-major, as K*K*C/SIMD
    words; max-pool: the pooled map as a pixel stream.
    """
    if isinstance(setting, SlidingWindow):
        vectors = im2col(fmaps, setting.geom, setting.pad_code)
    else:
        vectors = max_pool(fmaps, setting.geom)
    return _vector_words(setting, vectors.reshape(-1, vectors.shape[-1]))


def _units_header(settings: Sequence[Setting]) -> str:
    lines = [f"  X({i}, {s.cpp()})" for i, s in enumerate(settings)]
    return ("// Generated by bnnflow.hls_units: the settings of this build (hls/bnn_conv_tb.cpp).\n"
            "#define BNNFLOW_CONV_UNITS(X) \\\n" + " \\\n".join(lines) + "\n")


@dataclass(frozen=True)
class UnitBuild:
    """A compiled testbench holding ``settings`` (unit ``i`` is ``settings[i]``)."""

    settings: tuple[Setting, ...]
    binary: Path
    compiled: bool      # False when a cached binary was reused
    log: str            # the compile command and g++'s output ("" when cached)
    compile_s: float


def build(settings: Sequence[Setting], build_dir: Path | None = None) -> UnitBuild:
    """Compile (or reuse) one testbench binary for every setting in ``settings``.

    The binary lands in ``build_dir/<hash>/bnn_conv_tb`` (default
    :data:`DEFAULT_BUILD_DIR`); the hash covers the unit sources, the
    generated settings header, the ap_types folder, the compiler, its version
    and flags -- a changed input recompiles, an unchanged one never does.
    Settings are checked (ValueError) before anything runs; a failed compile
    raises :class:`HlsToolError` with g++'s output.
    """
    settings = tuple(settings)
    if not settings:
        raise ValueError("build: no settings given")
    for s in settings:
        if not isinstance(s, (SlidingWindow, MaxPool)):
            raise TypeError(f"a unit setting is SlidingWindow or MaxPool, got {type(s).__name__}")
    src = hls_source_dir()
    missing = [n for n in UNIT_SOURCES if not (src / n).is_file()]
    if missing:
        raise HlsToolError(f"{src}: unit sources missing ({', '.join(missing)})")
    ap_include = find_ap_include()
    cxx = find_compiler()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    header = _units_header(settings)
    key = build_fingerprint([(src / n).read_bytes() for n in UNIT_SOURCES]
                       + [header.encode(), str(ap_include).encode(), cxx.encode(), version.encode(),
                          " ".join(CXX_FLAGS).encode()])
    target = Path(build_dir if build_dir is not None else DEFAULT_BUILD_DIR) / key
    binary = target / "bnn_conv_tb"
    if binary.is_file() and os.access(binary, os.X_OK):
        return UnitBuild(settings, binary, False, "", 0.0)
    target.mkdir(parents=True, exist_ok=True)
    (target / UNITS_HEADER).write_text(header)
    cmd = [cxx, *CXX_FLAGS, "-I", str(target), "-I", str(src), "-isystem", str(ap_include),
           str(src / "bnn_conv_tb.cpp")]
    t0 = time.perf_counter()
    log = compile_binary(cmd, binary, "unit testbench")
    return UnitBuild(settings, binary, True, log, time.perf_counter() - t0)


@dataclass
class UnitRun:
    """One unit run: the words it wrote and its loop's trip count."""

    setting: Setting
    images: int
    words: np.ndarray       # (words written, word bytes) uint8
    iterations: int         # trip count of the unit's pipelined loop: cycles at II=1 without the pipeline depth
    buffer_words: int       # words of the unit's memory as the C++ sizes it (line buffer / accumulator row)
    passed: bool            # the testbench's own checks: all input read, images * out_words written
    output: str
    timings: dict[str, float] = field(default_factory=dict)

    def fields(self) -> np.ndarray:
        """The words as (words, elements per word) int64 codes."""
        s = self.setting
        return packing.unpack_bytes_to_fields(self.words, s.word_elems, s.elem_bits, _word_bytes(s), signed=False)


def run(unit: UnitBuild, index: int, fmaps: np.ndarray, timeout: float = 300.0) -> UnitRun:
    """Run unit ``index`` of ``unit`` on ``fmaps`` ((N, H, W, C) codes) and return what it wrote.

    Raises :class:`HlsToolError` when the testbench cannot use its files
    (exit 2); a unit that writes wrong or too few words is reported in the
    result (``passed``, ``words``), not raised.
    """
    if not 0 <= index < len(unit.settings):
        raise ValueError(f"unit index {index} is not in this build's 0..{len(unit.settings) - 1}")
    setting = unit.settings[index]
    data = pixel_words(setting, fmaps)
    images = int(np.asarray(fmaps).shape[0])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bnn_conv_tb.") as tmp:
        in_path, out_path = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        data.tofile(in_path)
        proc = subprocess.run([str(unit.binary), str(index), str(images), str(in_path), str(out_path)],
                              capture_output=True, text=True, timeout=timeout)
        output = proc.stdout + proc.stderr
        if proc.returncode == 2 or not out_path.is_file():
            raise HlsToolError(f"unit testbench could not run unit {index} (exit {proc.returncode}):\n{output}")
        raw = np.fromfile(out_path, dtype=np.uint8)
    nbytes = _word_bytes(setting)
    reported = {"iterations": -1, "buffer_words": -1}
    for line in proc.stdout.splitlines():
        if line.startswith(f"bnn_conv_tb: unit {index} "):
            for token in line.split():
                key, _, value = token.partition("=")
                if key in reported and value.isdigit():
                    reported[key] = int(value)
    iterations = reported["iterations"]
    passed = proc.returncode == 0 and "read while empty" not in output and iterations >= 0
    return UnitRun(setting=setting, images=images, words=raw.reshape(-1, nbytes), iterations=iterations,
                   buffer_words=reported["buffer_words"], passed=passed, output=output,
                   timings={"run_s": time.perf_counter() - t0})
