"""Run the HLS C-simulation of an artifact with g++ (no Vitis needed).

:func:`run_csim` compiles ``hls/bnn_top.cpp`` + ``hls/bnn_tb.cpp`` against the
artifact's generated header and Xilinx's ap_types headers, runs the testbench
on the artifact's golden vectors and returns the scores it computed;
:func:`run_testbench` runs any sequence of load and infer runs on one
instance (a runtime parameter reload and back). The testbench reads DMA
buffers -- beats exactly as the host's DMA moves them (docs/ACCEL.md) -- and
this module writes them with :mod:`bnnflow.accel` and :mod:`bnnflow.packing`,
the one definition of the stream layout. The binary is cached under a hash
of every input, so a second call with the same network does not recompile.

``python -m bnnflow.hlsflow EXPORT_DIR`` writes the testbench's files of an
export for the Vitis flows (``hls/run_hls.tcl``, ``hls/hls_config.cfg``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from . import accel
from . import artifact as art
from . import packing
from .writer import read_vectors

#: The engine sources (hls/ at the repository root, next to this package).
HLS_SOURCES = ("bnn_axis.hpp", "bnn_conv.hpp", "bnn_load.hpp", "bnn_mvtu.hpp", "bnn_streams.hpp", "bnn_top.hpp",
               "bnn_top.cpp", "bnn_tb.cpp")
#: BNNFLOW_LAYER_TAPS: the C simulation records every layer's output words (hls/bnn_streams.hpp), so a test
#: sees an error a later threshold layer would hide; synthesis and the Vitis flows never define it.
CXX_FLAGS = ("-std=c++14", "-O1", "-w", "-DBNNFLOW_LAYER_TAPS")
#: A C simulation of a net with more power-on parameter values than this (weight words plus threshold or
#: mul/add entries) compiles the header with BNNFLOW_PARAMS_FROM_STREAM and loads the parameters through the
#: load-mode stream before the first inference: g++ spends minutes, superlinearly, on large ap_int
#: initializers (a 2 x 256-neuron x 255-threshold net: > 10 min even at -O0), while the load path is the one
#: the board's driver and the Vitis testbench (``load params infer ...``) use anyway.
PARAMS_FROM_STREAM_ABOVE = 16384
#: Where ``python -m bnnflow.hlsflow`` puts the testbench files of an export (relative to it).
TB_DIR = "hls/tb"
#: The testbench files of an export: input beats, golden output beats, parameter stream.
TB_FILES = {"in": "in_beats.bin", "golden": "out_beats.bin", "params": "params.bin"}


class HlsToolError(RuntimeError):
    """A missing tool or header, or a failed compile."""


def hls_source_dir() -> Path:
    """The folder with the engine headers, top and testbench (``$BNNFLOW_HLS_DIR`` overrides)."""
    override = os.environ.get("BNNFLOW_HLS_DIR")
    here = Path(__file__).resolve().parent
    # a source checkout has hls/ beside the package; a wheel ships it as bnnflow/hls
    path = Path(override) if override else next(
        (p for p in (here.parent / "hls", here / "hls") if (p / HLS_SOURCES[0]).is_file()), here.parent / "hls")
    missing = [name for name in HLS_SOURCES if not (path / name).is_file()]
    if missing:
        raise HlsToolError(f"{path}: HLS sources missing ({', '.join(missing)}); run from a bnnflow checkout "
                           "or set BNNFLOW_HLS_DIR to its hls/ folder")
    return path


def find_ap_include() -> Path:
    """Folder holding ap_int.h and hls_stream.h.

    ``$XILINX_HLS/include`` when Vitis is set up, else the ap_types headers the
    hls4ml wheel ships (found without importing hls4ml).
    """
    tried = []
    xilinx = os.environ.get("XILINX_HLS")
    if xilinx:
        candidate = Path(xilinx) / "include"
        if (candidate / "ap_int.h").is_file() and (candidate / "hls_stream.h").is_file():
            return candidate
        tried.append(f"{candidate} (from XILINX_HLS)")
    spec = importlib.util.find_spec("hls4ml")
    if spec is not None:
        for location in spec.submodule_search_locations or []:
            candidate = Path(location) / "templates" / "vivado" / "ap_types"
            if (candidate / "ap_int.h").is_file() and (candidate / "hls_stream.h").is_file():
                return candidate
            tried.append(str(candidate))
    where = f" (looked in: {', '.join(tried)})" if tried else ""
    raise HlsToolError(
        "Xilinx's ap_int.h / hls_stream.h were not found" + where + ". Install the headers with "
        "`pip install --no-deps hls4ml==1.3.0` (only its ap_types headers are used), or set XILINX_HLS "
        "to a Vitis HLS installation (e.g. source <Vitis>/settings64.sh).")


def find_compiler() -> str:
    """The C++ compiler: ``$CXX`` or g++."""
    cxx = os.environ.get("CXX", "g++")
    path = shutil.which(cxx)
    if path is None:
        raise HlsToolError(f"C++ compiler '{cxx}' not found on PATH; install g++ (e.g. `apt-get install g++`) "
                           "or set CXX")
    return path


@dataclass
class CsimResult:
    """Outcome of one C-simulation run."""

    scores: np.ndarray            # (N, C) int64 scores computed by bnnflow_top
    golden: np.ndarray            # (N, C) int64 golden scores it was compared with
    layer_outputs: list[np.ndarray]  # per layer, (N, out_elements) int64 outputs the layer wrote (the C
                                     # simulation's taps; a conv layer's pooled map in HWC order)
    mismatches: int               # differing scores; when all agree but the testbench failed, its error
                                  # count (TLAST, TKEEP/padding, status/signature checks), at least 1
    returncode: int               # the testbench's exit status (0: all matched)
    output: str                   # compiler output (when it compiled) and testbench output
    binary: Path
    compiled: bool                # False when the cached binary was reused
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and self.mismatches == 0


def build_fingerprint(parts: list[bytes]) -> str:
    """The cache key of a C-simulation build: a hash over its length-prefixed inputs (sources, flags, tools)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()[:20]


def _header(artifact: art.Artifact) -> Path:
    header_rel = (artifact.manifest.get("hls") or {}).get("header")
    if not header_rel:
        raise art.ArtifactError(f"{artifact.root / art.MANIFEST}: no 'hls' section; export with HLS generation "
                                "(`bnnflow export --generate rtl,hls`)")
    header = artifact.path(header_rel)
    if not header.is_file():
        raise art.ArtifactError(f"{header}: generated HLS header missing")
    return header


def power_on_values(artifact: art.Artifact) -> int:
    """How many values the header's memory initializers hold: weight words plus threshold / mul-add entries."""
    total = 0
    for layer in artifact.layers:
        total += layer.pe * layer.weight_depth
        if layer.has_thresholds:
            total += layer.out_features * layer.n_thresholds
        elif layer.affine_bits:
            total += layer.out_features * 2
    return total


def params_from_stream(artifact: art.Artifact) -> bool:
    """True when the C simulation leaves the initializers out and loads the parameters first (see the limit)."""
    return power_on_values(artifact) > PARAMS_FROM_STREAM_ABOVE


def _compile(artifact: art.Artifact, build_dir: Path | None, name: str, sources: list[Path],
             generated: dict[str, str] | None = None, defines: tuple[str, ...] = ()) -> tuple[Path, bool, str]:
    """Compile (or reuse) ``sources`` + ``generated`` (file name -> C++ text) against the artifact's header.

    The binary lands in ``build_dir/<hash>/name``; the hash covers every
    source, the generated header, the ap_types folder, the compiler and its
    flags, so a changed input always recompiles and an unchanged one never does.
    """
    header = _header(artifact)
    src = hls_source_dir()
    ap_include = find_ap_include()
    cxx = find_compiler()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    flags = [*CXX_FLAGS, *(f"-D{d}" for d in defines)]
    generated = generated or {}
    key = build_fingerprint([(src / n).read_bytes() for n in HLS_SOURCES]
                       + [text.encode() for text in generated.values()]
                       + [name.encode(), header.read_bytes(), str(ap_include).encode(), cxx.encode(),
                          version.encode(), " ".join(flags).encode()])

    build_dir = Path(build_dir) if build_dir is not None else artifact.root / "hls" / "csim"
    target_dir = build_dir / key
    binary = target_dir / name
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary, False, ""
    target_dir.mkdir(parents=True, exist_ok=True)
    for file_name, text in generated.items():
        (target_dir / file_name).write_text(text)
    cmd = [cxx, *flags, "-I", str(src), "-I", str(header.parent), "-isystem", str(ap_include),
           *[str(p) for p in sources], *[str(target_dir / n) for n in generated]]
    return binary, True, compile_binary(cmd, binary, "C-simulation")


def compile_binary(cmd: list[str], binary: Path, what: str) -> str:
    """Run the compile ``cmd`` (without ``-o``) into ``binary`` atomically; return the command and its output.

    The compiler writes a temporary file beside ``binary`` that replaces it
    only when complete, so a concurrent caller sees either nothing or the
    whole binary. Raises :class:`HlsToolError` with the compiler's message.
    """
    fd, tmp = tempfile.mkstemp(prefix=f"{binary.name}.", dir=binary.parent)
    os.close(fd)
    proc = subprocess.run([*cmd, "-o", tmp], capture_output=True, text=True)
    log = " ".join(cmd) + "\n" + proc.stdout + proc.stderr
    if proc.returncode != 0:
        os.unlink(tmp)
        raise HlsToolError(f"{what} compile failed (exit {proc.returncode}):\n{log}")
    os.chmod(tmp, 0o755)
    os.replace(tmp, binary)
    return log


def build_csim(artifact: art.Artifact, build_dir: Path | None = None) -> tuple[Path, bool, str]:
    """Compile (or reuse) the testbench binary of ``artifact``.

    Returns (binary, compiled_now, compiler_output).
    """
    src = hls_source_dir()
    defines = ("BNNFLOW_PARAMS_FROM_STREAM",) if params_from_stream(artifact) else ()
    return _compile(artifact, build_dir, "bnn_tb", [src / "bnn_top.cpp", src / "bnn_tb.cpp"], defines=defines)


def _readback_source(artifact: art.Artifact) -> str:
    """C++ that writes every ``Lk_weights`` array of the header in ``Lk_weights.bin``'s byte layout."""
    calls = "\n".join(f"  dump(f, bnnflow::L{k}_weights);" for k in range(len(artifact.layers)))
    return f"""// Generated by bnnflow.hlsflow.read_back_weights: the weight memories as the C++ holds them.
#include <cstdio>
#define BNNFLOW_DATA_ONLY  // the memories only, no engine instantiations
#include "bnnflow_params.h"

// Word [p][d] of W = SIMD*W_BITS bits, word bit b at bit b % 8 of byte b / 8: the layout of Lk_weights.bin
// (docs/ARTIFACT.md).
template <int W, unsigned PE, unsigned DEPTH>
void dump(std::FILE *f, const ap_uint<W> (&weights)[PE][DEPTH]) {{
  for (unsigned p = 0; p < PE; p++)
    for (unsigned d = 0; d < DEPTH; d++)
      for (int lo = 0; lo < W; lo += 8) {{
        const int hi = lo + 7 < W ? lo + 7 : W - 1;
        std::fputc(int(weights[p][d](hi, lo).to_uint()), f);
      }}
}}

int main(int argc, char **argv) {{
  if (argc != 2) {{ std::fprintf(stderr, "usage: %s OUT.bin\\n", argv[0]); return 2; }}
  std::FILE *f = std::fopen(argv[1], "wb");
  if (!f) {{ std::perror(argv[1]); return 2; }}
{calls}
  return std::fclose(f) == 0 ? 0 : 2;
}}
"""


def read_back_weights(artifact: art.Artifact, build_dir: Path | None = None) -> list[np.ndarray]:
    """The weight memories the compiled header holds, per layer, as (PE, NF*SF, ceil(SIMD*weight_bits/8)) bytes.

    Compiles a small program against the artifact's ``bnnflow_params.h`` that
    writes each ``Lk_weights`` array byte by byte, so the result shows what
    the C++ (Xilinx's ap_uint constructors included) made of the literals,
    not what the text says. Equal to the bytes of ``Lk_weights.bin`` when the
    header is right.
    """
    binary, _compiled, _log = _compile(artifact, build_dir, "bnn_readback", [],
                                       {"bnn_readback.cpp": _readback_source(artifact)})
    with tempfile.TemporaryDirectory(prefix="bnn_readback.") as tmp:
        out = Path(tmp) / "weights.bin"
        proc = subprocess.run([str(binary), str(out)], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise HlsToolError(f"weight read-back failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
        raw = np.fromfile(out, dtype=np.uint8)
    layers, offset = [], 0
    for layer in artifact.layers:
        shape = (layer.pe, layer.weight_depth, -(-layer.weight_word_bits // 8))
        size = int(np.prod(shape))
        layers.append(raw[offset:offset + size].reshape(shape))
        offset += size
    if offset != raw.size:
        raise HlsToolError(f"weight read-back wrote {raw.size} bytes, the artifact's layers hold {offset}")
    return layers


# -- the testbench's files: DMA buffers ------------------------------------------------
def input_beats(artifact: art.Artifact, images: np.ndarray) -> np.ndarray:
    """(N, F) unsigned images -> the MM2S buffer of an infer run, as (beats, beat bytes) uint8.

    Each image is the first layer's ``in_stream_words`` words of SIMD
    elements (docs/ARTIFACT.md, "Streams": SF words, or for a convolution the
    HWC input map pixel by pixel, which packing the flat image SIMD elements
    per word gives), each word ``beats_per_word`` beats of the input stream,
    lowest bits first, zero padding (docs/ACCEL.md).
    """
    images = np.asarray(images)
    first, stream = artifact.layers[0], accel.input_stream(artifact)
    if images.ndim != 2 or images.shape[1] != artifact.input_features:
        raise ValueError(f"images have shape {images.shape}, the network takes (N, {artifact.input_features})")
    if images.size and (images.min() < 0 or images.max() >= (1 << first.input_bits)):
        raise ValueError(f"an image element is outside 0..{(1 << first.input_bits) - 1} "
                         f"(input_bits={first.input_bits})")
    data = packing.pack_vectors(images, first.simd, first.input_bits, stream.word_bytes)
    return data.reshape(-1, stream.beat_bytes)


def output_beats(artifact: art.Artifact, scores: np.ndarray) -> np.ndarray:
    """(N, C) scores -> the S2MM buffer the accelerator writes for them, as (beats, beat bytes) uint8."""
    scores = np.asarray(scores)
    last, stream = artifact.layers[-1], accel.output_stream(artifact)
    if scores.ndim != 2 or scores.shape[1] != artifact.num_classes:
        raise ValueError(f"scores have shape {scores.shape}, the network gives (N, {artifact.num_classes})")
    data = packing.pack_vectors(scores, last.pe, last.output_bits, stream.word_bytes)
    return data.reshape(-1, stream.beat_bytes)


def scores_from_beats(artifact: art.Artifact, data: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` images' scores in an S2MM buffer -> (n, C) int64 (inverse of :func:`output_beats`)."""
    last, stream = artifact.layers[-1], accel.output_stream(artifact)
    return packing.unpack_vectors(np.asarray(data, dtype=np.uint8), n, artifact.num_classes, last.pe,
                                  last.output_bits, stream.word_bytes, signed=last.output_signed)


@dataclass(frozen=True)
class Infer:
    """An infer-mode run of the testbench: ``images`` (N, F) must give ``golden`` (N, C)."""

    images: np.ndarray
    golden: np.ndarray


@dataclass(frozen=True)
class Load:
    """A load-mode run with the parameter stream of ``params`` (an artifact of the build's signature)."""

    params: art.Artifact


Step = Union[Infer, Load]


@dataclass
class TbResult:
    """Outcome of one testbench process (any number of load and infer runs)."""

    scores: list[np.ndarray]      # per Infer step, (N, C) int64 scores read back from the output beats
    layer_outputs: list[list[np.ndarray]]  # per Infer step, per layer, (N, out_elements) int64 outputs it wrote
    errors: dict[str, int]        # mismatches, tlast_errors, format_errors, check_errors of the summary line
    returncode: int               # 0: everything matched, 1: a mismatch or failed check, 2: unusable files
    output: str                   # compiler output (when it compiled) and testbench output
    binary: Path
    compiled: bool
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and not any(self.errors.values())


def check_same_hardware(artifact: art.Artifact, params: art.Artifact) -> None:
    """Raise ValueError unless ``params`` has ``artifact``'s hardware signature (its parameters fit the build)."""
    built, wanted = accel.hardware_description(artifact.layers), accel.hardware_description(params.layers)
    if accel.signature_of(built) != accel.signature_of(wanted):
        raise ValueError(f"{params.root}: its parameters are for hardware signature 0x{accel.signature_of(wanted):08x}, "
                         f"the build of {artifact.root} is 0x{accel.signature_of(built):08x} "
                         f"({accel.describe_difference(built, wanted)}; 'bitstream' is the build, 'export' the "
                         "parameters)")


def run_testbench(artifact: art.Artifact, steps: list[Step], build_dir: Path | None = None,
                  timeout: float = 600.0) -> TbResult:
    """Compile (cached) ``artifact``'s testbench and run ``steps`` in order on one instance.

    Returns the scores of every ``Infer`` step and, from the C simulation's
    layer taps, every layer's outputs (compare them with
    ``GoldenModel(...).trace(images).outputs``).

    Every ``Load`` must carry an artifact of the build's hardware signature
    (ValueError otherwise, before anything is compiled). A build without
    power-on parameters (:func:`params_from_stream`) gets ``Load(artifact)``
    in front unless ``steps`` starts with a load. Raises
    :class:`HlsToolError` when g++ or the headers are missing, the compile
    fails, or the testbench cannot use its files; mismatches are reported in
    the result, not raised.
    """
    for step in steps:
        if isinstance(step, Load):
            check_same_hardware(artifact, step.params)
        elif isinstance(step, Infer):
            if step.golden.shape != (step.images.shape[0], artifact.num_classes):
                raise ValueError(f"golden scores have shape {step.golden.shape}, expected "
                                 f"({step.images.shape[0]}, {artifact.num_classes}) for {step.images.shape[0]} images")
        else:
            raise TypeError(f"a testbench step is Infer or Load, got {type(step).__name__}")
    if params_from_stream(artifact) and not (steps and isinstance(steps[0], Load)):
        steps = [Load(artifact), *steps]  # the build has no power-on parameters: load the artifact's own
    t0 = time.perf_counter()
    binary, compiled, log = build_csim(artifact, build_dir)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bnn_csim.") as tmp:
        args, outputs = [], []
        for i, step in enumerate(steps):
            if isinstance(step, Load):
                path = Path(tmp) / f"params{i}.bin"
                accel.param_stream(step.params).tofile(path)
                args += ["load", str(path)]
            else:
                paths = [Path(tmp) / f"{name}{i}.bin" for name in ("in", "golden", "out")]
                input_beats(artifact, step.images).tofile(paths[0])
                output_beats(artifact, step.golden).tofile(paths[1])
                args += ["infer", *map(str, paths)]
                outputs.append((paths[2], step.images.shape[0]))
        proc = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=timeout)
        output = log + proc.stdout + proc.stderr
        scores, layer_outputs = [], []
        for path, n in outputs:
            if not path.is_file():
                raise HlsToolError(f"C-simulation wrote no scores (exit {proc.returncode}):\n{output}")
            scores.append(scores_from_beats(artifact, np.fromfile(path, dtype=np.uint8), n))
            layer_outputs.append(_layer_outputs(artifact, path, n, output))
    t2 = time.perf_counter()
    return TbResult(scores=scores, layer_outputs=layer_outputs, errors=_reported_errors(proc.stdout),
                    returncode=proc.returncode, output=output, binary=binary, compiled=compiled,
                    timings={"compile_s": t1 - t0, "run_s": t2 - t1})


def _layer_outputs(artifact: art.Artifact, out_path: Path, n: int, output: str) -> list[np.ndarray]:
    """Every layer's (n, out_elements) outputs of one infer step, from the words the testbench's taps wrote.

    Layer k's words are ``OUT.layer<k>``: ``out_stream_words`` words per image
    (NF; for a convolution its pooled output map, pixel by pixel, NF words per
    pixel) of PE fields of ``output_bits``, ceil(PE*output_bits/8)
    little-endian bytes each -- unpacked by :func:`bnnflow.packing.unpack_vectors`
    into ``GoldenModel.trace``'s (n, out_elements) layout (a map in HWC order).
    """
    outs = []
    for layer in artifact.layers:
        path = Path(f"{out_path}.layer{layer.index}")
        if not path.is_file():
            raise HlsToolError(f"C-simulation wrote no output words of layer {layer.index} ({path}):\n{output}")
        outs.append(packing.unpack_vectors(np.fromfile(path, dtype=np.uint8), n, layer.out_elements, layer.pe,
                                           layer.output_bits, -(-layer.out_stream_bits // 8),
                                           signed=layer.output_signed))
    return outs


def run_csim(artifact: art.Artifact, build_dir: Path | None = None, golden_scores: Path | None = None,
             timeout: float = 600.0, limit: int | None = None, params: art.Artifact | None = None) -> CsimResult:
    """Compile (cached) and run the HLS testbench on ``artifact``'s golden vectors.

    ``golden_scores`` replaces ``vectors/scores.bin`` as the reference the
    testbench compares with (tests use it to check that a wrong score fails).
    ``limit`` runs only the first ``limit`` vectors. ``params`` (an artifact
    of the same hardware signature) is loaded at run time first, and its
    golden vectors are the ones run: the build of ``artifact`` computing
    another network's scores.
    Raises :class:`HlsToolError` when g++ or the headers are missing or the
    compile fails; a mismatch is reported in the result, not raised.
    """
    source = params if params is not None else artifact
    if params is not None:
        check_same_hardware(artifact, params)
    images, _labels, golden = read_vectors(source)
    if golden_scores is not None:
        golden = np.fromfile(Path(golden_scores), dtype="<i4").astype(np.int64).reshape(golden.shape)
    if limit is not None and limit < images.shape[0]:
        images, golden = images[:limit], golden[:limit]
    steps: list[Step] = ([Load(params)] if params is not None else []) + [Infer(images, golden)]
    result = run_testbench(artifact, steps, build_dir, timeout)
    scores = result.scores[0]
    mismatches = int(np.count_nonzero(scores != golden))
    if result.returncode != 0 and mismatches == 0:
        mismatches = max(1, sum(result.errors.values()))  # stream, TLAST or interface errors the testbench found
    return CsimResult(scores=scores, golden=golden, layer_outputs=result.layer_outputs[0], mismatches=mismatches,
                      returncode=result.returncode,
                      output=result.output, binary=result.binary, compiled=result.compiled, timings=result.timings)


def _reported_errors(stdout: str) -> dict[str, int]:
    """The error counts of the testbench's summary line (all 0 when it printed none)."""
    counts = {"mismatches": 0, "tlast_errors": 0, "format_errors": 0, "check_errors": 0}
    for line in stdout.splitlines():
        if line.startswith("bnn_tb: network "):
            for token in line.replace(",", " ").split():
                key, _, value = token.partition("=")
                if key in counts and value.isdigit():
                    counts[key] = int(value)
    return counts


def write_tb_files(artifact: art.Artifact, folder: Path | None = None) -> dict[str, Path]:
    """Write the testbench's files of ``artifact`` for the Vitis flows; return them by role.

    ``in`` (the golden vectors' images as input beats), ``golden`` (their
    scores as output beats) and ``params`` (the artifact's own parameter
    stream) land in ``folder`` (default ``<export>/hls/tb``). The testbench
    arguments ``load params infer in golden OUT`` then check the load path
    and the scores in csim and cosim.
    """
    folder = Path(folder) if folder is not None else artifact.root / TB_DIR
    images, _labels, golden = read_vectors(artifact)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {role: folder / name for role, name in TB_FILES.items()}
    input_beats(artifact, images).tofile(paths["in"])
    output_beats(artifact, golden).tofile(paths["golden"])
    accel.param_stream(artifact).tofile(paths["params"])
    return paths


def main(argv: list[str] | None = None) -> int:
    """``python -m bnnflow.hlsflow EXPORT_DIR [--out DIR]``: write the testbench's files of an export."""
    parser = argparse.ArgumentParser(
        prog="python -m bnnflow.hlsflow",
        description="Write the HLS testbench's input files of an export -- the golden images as input beats, "
                    "their scores as output beats, the parameter stream -- as the DMA buffers of docs/ACCEL.md, "
                    "for `vitis_hls -f hls/run_hls.tcl` and hls/hls_config.cfg (docs/HLS.md). The g++ "
                    "C-simulation (`bnnflow verify --against hls`) writes its own and needs none of this.")
    parser.add_argument("export_dir", type=Path, help="the folder `bnnflow export` wrote (with test vectors)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder for the files (default: EXPORT_DIR/{TB_DIR}, where the Vitis scripts look)")
    args = parser.parse_args(argv)
    try:
        artifact = art.load(args.export_dir)
        paths = write_tb_files(artifact, args.out)
    except (art.ArtifactError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for role, path in paths.items():
        print(f"{role:7s} {path} ({path.stat().st_size} bytes)")
    print(f"testbench arguments: load {paths['params']} infer {paths['in']} {paths['golden']} hls_out_beats.bin")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
