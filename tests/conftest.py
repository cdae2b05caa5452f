"""Shared fixtures: small trained runs are expensive-ish, so train them once per session."""

from __future__ import annotations

import gzip
import os
import struct
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, give each worker's torch (and its children's) a fair share of the cores.

    torch starts one OpenMP thread per core in every process; with ``-n 2`` on
    2 cores that is 4 threads spinning on 2 cores, and the digits training of
    ``digits_run`` took 46 CPU seconds instead of 8. OMP_NUM_THREADS reaches
    torch in this worker (read when torch is first used) and in child
    processes (the CLI in a subprocess, the notebook's kernel).
    """
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not os.environ.get("PYTEST_XDIST_WORKER") or not workers:
        return
    threads = max(1, (os.cpu_count() or 1) // max(1, int(workers)))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    if "torch" in sys.modules:     # imported by a plugin before this hook: set it directly
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """Write an array in MNIST IDX format (uint8 data)."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


@pytest.fixture(scope="session")
def hls_toolchain():
    """(g++, ap_types folder); skips the compiling HLS tests when either is missing."""
    from bnnflow import hlsflow

    try:
        return hlsflow.find_compiler(), hlsflow.find_ap_include()
    except hlsflow.HlsToolError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: faster and reproducible for the tiny models of the tests on 2 shared cores."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory) -> Path:
    """A small 28x28, 4-class dataset in IDX format (train raw, test gzipped) with learnable structure."""
    root = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(7)

    def make(n):
        labels = rng.integers(0, 4, size=n)
        images = rng.integers(0, 60, size=(n, 28, 28))
        for i, c in enumerate(labels):   # a bright quadrant per class
            r, q = divmod(int(c), 2)
            images[i, r * 14:(r + 1) * 14, q * 14:(q + 1) * 14] += 150
        return images.astype(np.uint8), labels.astype(np.uint8)

    tr_x, tr_y = make(400)
    te_x, te_y = make(100)
    write_idx(root / "train-images-idx3-ubyte", tr_x)
    write_idx(root / "train-labels-idx1-ubyte", tr_y)
    write_idx(root / "t10k-images-idx3-ubyte", te_x, compress=True)
    write_idx(root / "t10k-labels-idx1-ubyte", te_y, compress=True)
    return root


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """A BNN MLP trained briefly on digits (a few seconds), not exported."""
    from bnnflow.cli import main

    out = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["train", "--dataset", "digits", "--hidden", "64,32", "--epochs", "8", "--seed", "1",
                 "--out", str(out), "--quiet"]) == 0
    return out


def on_both_simulators(cases: Sequence[Any], sims: Sequence[str], verilator_fast: Sequence[str]) -> list[Any]:
    """``(sim, *case)`` params of an RTL test over ``cases`` x ``sims``, ids as stacked parametrize gives them.

    The id of each is ``<case id>-<sim>``. Verilator runs of cases whose id is
    not in ``verilator_fast`` are marked ``slow``: each is a cold Verilator
    build (seconds of C++), Icarus builds in well under a second, so the
    default suite runs every case on Icarus and the cases that exercise
    something Verilator-specific (or share a build with another test) on Verilator.
    """
    unknown = set(verilator_fast) - {case.id for case in cases}
    if unknown:
        raise ValueError(f"verilator_fast names no case: {sorted(unknown)}")
    return [pytest.param(sim, *case.values, id=f"{case.id}-{sim}",
                         marks=[*case.marks, *([pytest.mark.slow] if sim == "verilator" and case.id not in
                                               verilator_fast else [])])
            for case in cases for sim in sims]


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of ``bnnflow ARGV``; usage errors (SystemExit) count as their code."""
    from bnnflow.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err, *needles):
    """``err`` is one ``bnnflow ...: error: ...`` line (no traceback) containing every needle."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("bnnflow"), err
    assert ": error: " in lines[0], err
    for needle in needles:
        assert str(needle) in lines[0], (needle, err)
