"""Datasets as flat unsigned-integer images with a fixed, seeded split.

Every dataset reaches the model and the hardware as ``uint8`` pixels of
``input_bits`` bits, so the first layer's integer engine sees exactly what
torch saw. Sources:

- ``digits``: scikit-learn's 8x8 digits (values 0..16, 5 bits), ships offline;
  stratified 80/20 split seeded by ``split_seed``.
- ``idx:DIR``: MNIST IDX files in DIR (train/t10k images and labels, raw or
  ``.gz``), any image size and class count; pixels 0..255 (8 bits).
- ``mnist``: downloads the four MNIST IDX files into a cache folder (no
  torchvision), then reads them like ``idx:``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DatasetError(ValueError):
    """A dataset that cannot be found or read."""


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray   # (N, F) uint8
    y_train: np.ndarray   # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    input_shape: tuple[int, ...]
    input_bits: int
    num_classes: int

    @property
    def input_features(self) -> int:
        return int(self.x_train.shape[1])


def _bits_for(max_value: int) -> int:
    return max(1, int(max_value).bit_length())


def load_digits_dataset(split_seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.uint8)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=split_seed)
    return Dataset("digits", x_tr, y_tr, x_te, y_te, (8, 8), _bits_for(16), 10)


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw or gzip) into a numpy array of its declared shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            header = fh.read(4)
            if len(header) != 4 or header[0] != 0 or header[1] != 0:
                raise DatasetError(f"{path}: not an IDX file (bad magic {header!r})")
            dtype = _IDX_DTYPES.get(header[2])
            if dtype is None:
                raise DatasetError(f"{path}: unknown IDX element type 0x{header[2]:02x}")
            ndim = header[3]
            dims = struct.unpack(f">{ndim}I", fh.read(4 * ndim))
            data = np.frombuffer(fh.read(), dtype=dtype)
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    expected = int(np.prod(dims)) if dims else 1
    if data.size != expected:
        raise DatasetError(f"{path}: header says shape {dims} ({expected} values) but holds {data.size}")
    return data.reshape(dims)


def _find_idx(directory: Path, stem: str) -> Path:
    for candidate in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / candidate).is_file():
            return directory / candidate
    raise DatasetError(f"{directory}: missing {stem} (or {stem}.gz)")


def load_idx_dataset(directory: str | Path, name: str | None = None) -> Dataset:
    """MNIST-format dataset in ``directory``: any image size, labels 0..C-1."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"{directory}: no such directory (expected the four IDX files {list(IDX_FILES.values())})")
    arrays = {key: read_idx(_find_idx(directory, stem)) for key, stem in IDX_FILES.items()}
    xs = {}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[0] != labels.shape[0]:
            raise DatasetError(f"{directory}: {split} has {images.shape[0]} images but {labels.shape[0]} labels")
        if images.dtype != np.uint8:
            raise DatasetError(f"{directory}: {split} images must be unsigned bytes (IDX type 0x08)")
        xs[split] = images.reshape(images.shape[0], -1)
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DatasetError(f"{directory}: train images {arrays['train_images'].shape[1:]} and test images "
                           f"{arrays['test_images'].shape[1:]} differ in shape")
    y_tr = arrays["train_labels"].astype(np.int64)
    y_te = arrays["test_labels"].astype(np.int64)
    num_classes = int(max(y_tr.max(), y_te.max())) + 1
    return Dataset(name or f"idx:{directory}", xs["train"], y_tr, xs["test"], y_te,
                   tuple(arrays["train_images"].shape[1:]), 8, num_classes)


def mnist_cache_dir() -> Path:
    return Path(os.environ.get("BNNFLOW_DATA", Path.home() / ".cache" / "bnnflow")) / "mnist"


def download_mnist(target: Path | None = None) -> Path:
    """Fetch the four MNIST IDX files (gz) unless present; explain what to place by hand if offline."""
    target = target or mnist_cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    for stem in IDX_FILES.values():
        dest = target / f"{stem}.gz"
        if dest.is_file() or (target / stem).is_file():
            continue
        errors = []
        for mirror in MNIST_MIRRORS:
            try:
                with urllib.request.urlopen(mirror + dest.name, timeout=30) as resp, open(dest.with_suffix(".part"), "wb") as fh:
                    shutil.copyfileobj(resp, fh)
                dest.with_suffix(".part").rename(dest)
                break
            except OSError as exc:
                errors.append(f"{mirror}: {exc}")
        else:
            names = ", ".join(f"{s}.gz" for s in IDX_FILES.values())
            raise DatasetError(
                f"could not download MNIST ({'; '.join(errors)}). Place {names} in {target} "
                f"by hand (or use --dataset idx:DIR with a folder holding them).")
    return target


def load_dataset(spec: str, split_seed: int = 0) -> Dataset:
    """``digits``, ``mnist`` or ``idx:DIR``."""
    if spec == "digits":
        return load_digits_dataset(split_seed)
    if spec == "mnist":
        return load_idx_dataset(download_mnist(), name="mnist")
    if spec.startswith("idx:"):
        return load_idx_dataset(spec[4:])
    raise DatasetError(f"unknown dataset {spec!r}: use digits, mnist or idx:DIR")
