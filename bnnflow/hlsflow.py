"""Run the HLS C-simulation of an artifact with g++ (no Vitis needed).

:func:`run_csim` compiles ``hls/bnn_top.cpp`` + ``hls/bnn_tb.cpp`` against the
artifact's generated header and Xilinx's ap_types headers, runs the testbench
on the artifact's golden vectors and returns the scores it computed. The
binary is cached under a hash of every input, so a second call with the same
network does not recompile.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import artifact as art
from .writer import read_vectors

#: The engine sources (hls/ at the repository root, next to this package).
HLS_SOURCES = ("bnn_axis.hpp", "bnn_mvtu.hpp", "bnn_streams.hpp", "bnn_top.hpp", "bnn_top.cpp", "bnn_tb.cpp")
CXX_FLAGS = ("-std=c++14", "-O1", "-w")


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
    mismatches: int               # differing scores (plus stream/TLAST errors the testbench counted)
    returncode: int               # the testbench's exit status (0: all matched)
    output: str                   # compiler output (when it compiled) and testbench output
    binary: Path
    compiled: bool                # False when the cached binary was reused
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and self.mismatches == 0


def _fingerprint(parts: list[bytes]) -> str:
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


def _compile(artifact: art.Artifact, build_dir: Path | None, name: str, sources: list[Path],
             generated: dict[str, str] | None = None) -> tuple[Path, bool, str]:
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
    flags = list(CXX_FLAGS)
    generated = generated or {}
    key = _fingerprint([(src / n).read_bytes() for n in HLS_SOURCES]
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
    fd, tmp = tempfile.mkstemp(prefix=f"{name}.", dir=target_dir)
    os.close(fd)
    proc = subprocess.run([*cmd, "-o", tmp], capture_output=True, text=True)
    log = " ".join(cmd) + "\n" + proc.stdout + proc.stderr
    if proc.returncode != 0:
        os.unlink(tmp)
        raise HlsToolError(f"C-simulation compile failed (exit {proc.returncode}):\n{log}")
    os.chmod(tmp, 0o755)
    os.replace(tmp, binary)  # atomic: a concurrent caller sees either nothing or the full binary
    return binary, True, log


def build_csim(artifact: art.Artifact, build_dir: Path | None = None) -> tuple[Path, bool, str]:
    """Compile (or reuse) the testbench binary of ``artifact``.

    Returns (binary, compiled_now, compiler_output).
    """
    src = hls_source_dir()
    return _compile(artifact, build_dir, "bnn_tb", [src / "bnn_top.cpp", src / "bnn_tb.cpp"])


def _readback_source(artifact: art.Artifact) -> str:
    """C++ that writes every ``Lk_weights`` array of the header in ``Lk_weights.bin``'s byte layout."""
    calls = "\n".join(f"  dump(f, bnnflow::L{k}_weights);" for k in range(len(artifact.layers)))
    return f"""// Generated by bnnflow.hlsflow.read_back_weights: the weight memories as the C++ holds them.
#include <cstdio>
#define BNNFLOW_DATA_ONLY  // the memories only, no engine instantiations
#include "bnnflow_params.h"

// Word [p][d], lane j at bit j % 8 of byte j / 8: the layout of Lk_weights.bin (docs/ARTIFACT.md).
template <int SIMD, unsigned PE, unsigned DEPTH>
void dump(std::FILE *f, const ap_uint<SIMD> (&weights)[PE][DEPTH]) {{
  for (unsigned p = 0; p < PE; p++)
    for (unsigned d = 0; d < DEPTH; d++)
      for (int lo = 0; lo < SIMD; lo += 8) {{
        const int hi = lo + 7 < SIMD ? lo + 7 : SIMD - 1;
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
    """The weight memories the compiled header actually holds, per layer, as (PE, NF*SF, ceil(SIMD/8)) bytes.

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
        shape = (layer.pe, layer.weight_depth, -(-layer.simd // 8))
        size = int(np.prod(shape))
        layers.append(raw[offset:offset + size].reshape(shape))
        offset += size
    if offset != raw.size:
        raise HlsToolError(f"weight read-back wrote {raw.size} bytes, the artifact's layers hold {offset}")
    return layers


def run_csim(artifact: art.Artifact, build_dir: Path | None = None, golden_scores: Path | None = None,
             timeout: float = 600.0, limit: int | None = None) -> CsimResult:
    """Compile (cached) and run the HLS testbench on ``artifact``'s golden vectors.

    ``golden_scores`` replaces ``vectors/scores.bin`` as the reference the
    testbench compares with (tests use it to check that a wrong score fails).
    ``limit`` runs only the first ``limit`` vectors.
    Raises :class:`HlsToolError` when g++ or the headers are missing or the
    compile fails; a mismatch is reported in the result, not raised.
    """
    info = artifact.manifest.get("vectors")
    images, _labels, golden = read_vectors(artifact)
    t0 = time.perf_counter()
    binary, compiled, log = build_csim(artifact, build_dir)
    t1 = time.perf_counter()
    scores_in = Path(golden_scores) if golden_scores is not None else artifact.path(info["scores"])
    if golden_scores is not None:
        golden = np.fromfile(scores_in, dtype="<i4").astype(np.int64).reshape(golden.shape)
    images_in = artifact.path(info["images"])
    with tempfile.TemporaryDirectory(prefix="bnn_csim.") as tmp:
        if limit is not None and limit < images.shape[0]:
            images, golden = images[:limit], golden[:limit]
            images_in, scores_in = Path(tmp) / "images.bin", Path(tmp) / "golden.bin"
            images.astype(np.uint8).tofile(images_in)
            golden.astype("<i4").tofile(scores_in)
        out_path = Path(tmp) / "scores.bin"
        proc = subprocess.run([str(binary), str(images_in), str(scores_in), str(out_path)],
                              capture_output=True, text=True, timeout=timeout)
        output = log + proc.stdout + proc.stderr
        n, c = images.shape[0], artifact.num_classes
        if out_path.is_file() and out_path.stat().st_size == n * c * 4:
            scores = np.fromfile(out_path, dtype="<i4").astype(np.int64).reshape(n, c)
        else:
            raise HlsToolError(f"C-simulation wrote no scores (exit {proc.returncode}):\n{output}")
    t2 = time.perf_counter()
    mismatches = int(np.count_nonzero(scores != golden))
    reported = _reported_errors(proc.stdout)
    if proc.returncode != 0 and mismatches == 0:
        mismatches = max(1, reported)  # stream or TLAST errors the testbench found
    return CsimResult(scores=scores, golden=golden, mismatches=mismatches, returncode=proc.returncode,
                      output=output, binary=binary, compiled=compiled,
                      timings={"compile_s": t1 - t0, "run_s": t2 - t1})


def _reported_errors(stdout: str) -> int:
    """mismatches + tlast_errors from the testbench's summary line (0 when absent)."""
    total = 0
    for line in stdout.splitlines():
        if line.startswith("bnn_tb:") and "mismatches=" in line:
            for token in line.replace(",", " ").split():
                if token.startswith(("mismatches=", "tlast_errors=")):
                    total += int(token.split("=", 1)[1])
    return total
