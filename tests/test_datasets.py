"""Dataset loading: digits split, the IDX reader (raw and gz), MNIST download and its offline error."""

import gzip
import urllib.request

import numpy as np
import pytest

from bnnflow import datasets
from bnnflow.datasets import DatasetError, load_dataset, read_idx

from conftest import write_idx


def test_digits_split_is_stratified_and_fixed():
    a = load_dataset("digits")
    b = load_dataset("digits")
    assert a.x_train.shape == (1437, 64) and a.x_test.shape == (360, 64)
    assert a.x_train.dtype == np.uint8 and a.x_train.max() == 16 and a.input_bits == 5
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.y_test, b.y_test)
    assert np.bincount(a.y_test).min() >= 35           # every class ~ 20% of its samples
    assert not np.array_equal(load_dataset("digits", split_seed=1).y_test, a.y_test)


def test_idx_reader_raw_and_gzip(tmp_path):
    images = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    write_idx(tmp_path / "raw", images)
    write_idx(tmp_path / "zipped", images, compress=True)
    assert np.array_equal(read_idx(tmp_path / "raw"), images)
    assert np.array_equal(read_idx(tmp_path / "zipped.gz"), images)


def test_idx_reader_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(DatasetError, match="bad: not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")
    with pytest.raises(DatasetError, match=r"short: header says shape \(5,\) \(5 values\) but holds 2"):
        read_idx(tmp_path / "short")


def test_idx_dataset_any_shape_and_classes(idx_dir):
    ds = load_dataset(f"idx:{idx_dir}")
    assert ds.input_shape == (28, 28) and ds.input_features == 784 and ds.num_classes == 4
    assert ds.input_bits == 8 and len(ds.x_train) == 400 and len(ds.x_test) == 100


def test_idx_dataset_missing_file(idx_dir, tmp_path):
    for f in idx_dir.iterdir():
        if not f.name.startswith("t10k-labels"):
            (tmp_path / f.name).write_bytes(f.read_bytes())
    with pytest.raises(DatasetError, match="missing t10k-labels-idx1-ubyte"):
        load_dataset(f"idx:{tmp_path}")


def test_mnist_offline_names_the_files_to_place(tmp_path, monkeypatch):
    monkeypatch.setenv("BNNFLOW_DATA", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DatasetError) as exc:
        load_dataset("mnist")
    message = str(exc.value)
    assert "network unreachable" in message and str(tmp_path / "mnist") in message
    for stem in datasets.IDX_FILES.values():
        assert f"{stem}.gz" in message


def test_mnist_uses_files_placed_by_hand(idx_dir, tmp_path, monkeypatch):
    """With the four files in the cache folder, `--dataset mnist` reads them and never downloads."""
    cache = tmp_path / "mnist"
    cache.mkdir()
    for f in idx_dir.iterdir():
        data = f.read_bytes()
        name = f.name if f.name.endswith(".gz") else f.name + ".gz"
        (cache / name).write_bytes(data if f.name.endswith(".gz") else gzip.compress(data))
    monkeypatch.setenv("BNNFLOW_DATA", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("must not download"))
    ds = load_dataset("mnist")
    assert ds.name == "mnist" and ds.input_features == 784 and ds.num_classes == 4


def test_mnist_download_writes_the_cache(idx_dir, tmp_path, monkeypatch):
    """The download path: every file is fetched once (first mirror) and then read like idx:."""
    import io

    served = {}
    for f in idx_dir.iterdir():
        data = f.read_bytes()
        stem = f.name[:-3] if f.name.endswith(".gz") else f.name
        served[stem + ".gz"] = data if f.name.endswith(".gz") else gzip.compress(data)
    requested = []

    def fake_urlopen(url, timeout=None):
        requested.append(url)
        return io.BytesIO(served[url.rsplit("/", 1)[1]])

    monkeypatch.setenv("BNNFLOW_DATA", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    ds = load_dataset("mnist")
    assert ds.input_features == 784 and len(ds.x_test) == 100
    assert len(requested) == 4 and all(u.startswith(datasets.MNIST_MIRRORS[0]) for u in requested)
    load_dataset("mnist")
    assert len(requested) == 4          # cached: no second download
