"""Shared fixtures: small trained runs are expensive-ish, so train them once per session."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest


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
