"""Dataset loading: digits split, the IDX reader (raw and gz), MNIST download and its offline error."""

import gzip
import urllib.request

import numpy as np
import pytest

from bnnflow import datasets
from bnnflow.datasets import DatasetError, load_dataset, read_idx

from conftest import assert_one_line, run_cli, write_idx


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


def test_idx_reader_names_every_malformation(tmp_path):
    cases = {
        "empty": (b"", "empty: empty file"),
        "magic": (b"\x01\x00\x08\x01\x00\x00\x00\x01a", "magic: not an IDX file"),
        "dtype": (b"\x00\x00\x0a\x01\x00\x00\x00\x01a", "dtype: unknown IDX element type 0x0a"),
        "nodims": (b"\x00\x00\x08\x00a", "nodims: IDX header declares 0 dimensions"),
        "header": (b"\x00\x00\x08\x03\x00\x00\x00\x01", r"header: truncated header \(3 dimensions need 16 bytes"),
        "partial": (b"\x00\x00\x0c\x01\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00",
                    "partial: 6 data bytes are not a whole number of 4-byte 32-bit integer elements"),
        "extra": (b"\x00\x00\x08\x01\x00\x00\x00\x01ab", r"extra: header says shape \(1,\) \(1 values\) but holds 2"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DatasetError, match=message):
            read_idx(tmp_path / name)
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match=r"bad.gz: cannot read"):
        read_idx(tmp_path / "bad.gz")
    with pytest.raises(DatasetError, match="missing: cannot read"):
        read_idx(tmp_path / "missing")


def _labelled(y_train, y_test, sources=True):
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    return datasets.Dataset("toy", np.zeros((len(y_train), 4), np.uint8), y_train,
                            np.zeros((len(y_test), 4), np.uint8), y_test, (4,), 8, 99,
                            sources={"train_labels": "TR.idx", "test_labels": "TE.idx"} if sources else {})


def test_check_classes_derives_and_validates_the_class_count():
    ds = datasets.check_classes(_labelled([0, 1, 2, 2, 1], [2, 0]))
    assert ds.num_classes == 3 and not ds.num_classes_declared
    with pytest.raises(DatasetError, match=r"TR.idx: .*largest label is 200 \(index 2\) and class\(es\) 2..199 never"):
        datasets.check_classes(_labelled([0, 1, 200, 1], [0]))
    with pytest.raises(DatasetError, match=r"TR.idx: .*class\(es\) 1, 3 never occur"):
        datasets.check_classes(_labelled([0, 2, 4], [0]))
    with pytest.raises(DatasetError, match=r"TE.idx: label 3 at index 1 never occurs in the training set"):
        datasets.check_classes(_labelled([0, 1, 2], [0, 3]))
    with pytest.raises(DatasetError, match=r"TR.idx: label -1 at index 1"):
        datasets.check_classes(_labelled([0, -1, 1], [0]))
    with pytest.raises(DatasetError, match=r"TR.idx: every training label is 0: a one-class"):
        datasets.check_classes(_labelled([0, 0, 0], [0]))
    with pytest.raises(DatasetError, match=r"toy train labels: every training label is 1"):
        datasets.check_classes(_labelled([1, 1], [0], sources=False))


def test_check_classes_with_a_declared_count():
    ds = datasets.check_classes(_labelled([0, 2, 2], [3]), num_classes=5)
    assert ds.num_classes == 5 and ds.num_classes_declared
    with pytest.raises(DatasetError, match=r"TE.idx: label 5 at index 0 is out of range for --num-classes 5"):
        datasets.check_classes(_labelled([0, 1], [5]), num_classes=5)
    with pytest.raises(DatasetError, match="at least 2 classes"):
        datasets.check_classes(_labelled([0, 1], [1]), num_classes=1)
    with pytest.raises(DatasetError, match="one-class dataset"):
        datasets.check_classes(_labelled([1, 1], [0]), num_classes=3)


def test_digits_and_idx_datasets_pass_the_class_check(idx_dir):
    assert datasets.check_classes(load_dataset("digits")).num_classes == 10
    assert datasets.check_classes(load_dataset(f"idx:{idx_dir}")).num_classes == 4


def test_load_dataset_argument_errors():
    with pytest.raises(DatasetError, match="--split-seed must be an integer"):
        load_dataset("digits", split_seed=-1)
    with pytest.raises(DatasetError, match="idx: names no folder"):
        load_dataset("idx:")


def test_input_bits_keeps_the_top_bits_of_each_pixel(idx_dir):
    full = load_dataset(f"idx:{idx_dir}")
    for bits in (1, 3, 8):
        ds = load_dataset(f"idx:{idx_dir}", input_bits=bits)
        assert ds.input_bits == bits and ds.x_train.dtype == np.uint8
        assert np.array_equal(ds.x_train, full.x_train >> (8 - bits))
        assert np.array_equal(ds.x_test, full.x_test >> (8 - bits))
        assert np.array_equal(ds.y_test, full.y_test)
    assert np.array_equal(datasets.quantize_pixels(np.array([0, 127, 128, 255]), 8, 1), [0, 0, 1, 1])
    assert np.array_equal(datasets.quantize_pixels(np.array([0, 7, 8, 16]), 5, 1), [0, 0, 0, 1])


def test_quantize_pixels_refuses_values_outside_the_source_width():
    with pytest.raises(ValueError, match=r"pixels must be unsigned 8-bit values \(0..255\), got values in 0..256"):
        datasets.quantize_pixels(np.array([0, 256]), 8, 1)
    with pytest.raises(ValueError, match=r"got values in -1..3"):
        datasets.quantize_pixels(np.array([-1, 3]), 8, 1)
    with pytest.raises(TypeError, match="pixels must be an integer array, got dtype float64"):
        datasets.quantize_pixels(np.array([0.5]), 8, 1)


@pytest.mark.parametrize("bits", [0, 6, True])
def test_input_bits_beyond_the_dataset_is_refused(bits):
    with pytest.raises(DatasetError, match=rf"--input-bits must be an integer 1..5 \(the dataset's pixels have 5 bits\), got {bits!r}"):
        load_dataset("digits", input_bits=bits)


def test_train_names_a_bad_input_bits(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--input-bits", "9", "--epochs", "1", "--out", tmp_path / "r")
    assert code == 2
    assert_one_line(err, "bnnflow train: error:", "--input-bits must be an integer 1..5", "got 9")
    assert not (tmp_path / "r").exists()
