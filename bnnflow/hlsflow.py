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


def build_csim(artifact: art.Artifact, build_dir: Path | None = None) -> tuple[Path, bool, str]:
    """Compile (or reuse) the testbench binary of ``artifact``.

    Returns (binary, compiled_now, compiler_output). The cache key covers the
    engine sources, the generated header, the ap_types folder, the compiler
    and its flags.
    """
    header_rel = (artifact.manifest.get("hls") or {}).get("header")
    if not header_rel:
        raise art.ArtifactError(f"{artifact.root / art.MANIFEST}: no 'hls' section; export with HLS generation")
    header = artifact.path(header_rel)
    if not header.is_file():
        raise art.ArtifactError(f"{header}: generated HLS header missing")
    src = hls_source_dir()
    ap_include = find_ap_include()
    cxx = find_compiler()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    flags = list(CXX_FLAGS)
    key = _fingerprint([(src / name).read_bytes() for name in HLS_SOURCES]
                       + [header.read_bytes(), str(ap_include).encode(), cxx.encode(), version.encode(),
                          " ".join(flags).encode()])

    build_dir = Path(build_dir) if build_dir is not None else artifact.root / "hls" / "csim"
    target_dir = build_dir / key
    binary = target_dir / "bnn_tb"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary, False, ""
    target_dir.mkdir(parents=True, exist_ok=True)
    cmd = [cxx, *flags, "-I", str(src), "-I", str(header.parent), "-isystem", str(ap_include),
           str(src / "bnn_top.cpp"), str(src / "bnn_tb.cpp")]
    fd, tmp = tempfile.mkstemp(prefix="bnn_tb.", dir=target_dir)
    os.close(fd)
    proc = subprocess.run([*cmd, "-o", tmp], capture_output=True, text=True)
    log = " ".join(cmd) + "\n" + proc.stdout + proc.stderr
    if proc.returncode != 0:
        os.unlink(tmp)
        raise HlsToolError(f"C-simulation compile failed (exit {proc.returncode}):\n{log}")
    os.chmod(tmp, 0o755)
    os.replace(tmp, binary)  # atomic: a concurrent caller sees either nothing or the full binary
    return binary, True, log


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
