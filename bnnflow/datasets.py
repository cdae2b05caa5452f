"""Datasets as flat unsigned-integer images with a fixed, seeded split.

Every dataset reaches the model and the hardware as ``uint8`` pixels of
``input_bits`` bits, so the first layer's integer engine sees exactly what
torch saw. Sources:

- ``digits``: scikit-learn's 8x8 digits (values 0..16, 5 bits), ships offline;
  stratified 80/20 split seeded by ``split_seed``. scikit-learn (the ``train``
  extra) is imported only for it: the IDX reader needs numpy alone.
- ``idx:DIR``: MNIST IDX files in DIR (train/t10k images and labels, raw or
  ``.gz``), any image size and class count; pixels 0..255 (8 bits).
- ``mnist``: downloads the four MNIST IDX files into a cache folder (no
  torchvision), then reads them like ``idx:``.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import shutil
import struct
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .extras import require

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
_IDX_TYPE_NAMES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "16-bit integer", 0x0C: "32-bit integer",
                   0x0D: "32-bit float", 0x0E: "64-bit float"}


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
    #: Where the labels came from, for error messages: {"train_labels": path, "test_labels": path}.
    sources: dict[str, str] = field(default_factory=dict)
    #: True when num_classes was given (``--num-classes``) rather than derived from the labels.
    num_classes_declared: bool = False

    @property
    def input_features(self) -> int:
        return int(self.x_train.shape[1])


def _bits_for(max_value: int) -> int:
    return max(1, int(max_value).bit_length())


def load_digits_dataset(split_seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's digits with a stratified, seeded split (needs scikit-learn, the ``train`` extra)."""
    require("sklearn", "train", "the digits dataset (scikit-learn)")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.uint8)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=split_seed)
    return Dataset("digits", x_tr, y_tr, x_te, y_te, (8, 8), _bits_for(16), 10,
                   sources={"train_labels": "digits (scikit-learn) train labels",
                            "test_labels": "digits (scikit-learn) test labels"})


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw or gzip) into a numpy array of its declared shape.

    Raises :class:`DatasetError` naming the file for anything malformed: an empty
    file, a wrong magic number, an unknown element type, a truncated header, data
    that is not a whole number of elements or disagrees with the header's shape.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    if not raw:
        raise DatasetError(f"{path}: empty file (expected an IDX file)")
    header = raw[:4]
    if len(header) != 4 or header[0] != 0 or header[1] != 0:
        raise DatasetError(f"{path}: not an IDX file (bad magic {header!r}; an IDX file starts with 00 00, "
                           f"a type byte and the number of dimensions)")
    dtype = _IDX_DTYPES.get(header[2])
    if dtype is None:
        raise DatasetError(f"{path}: unknown IDX element type 0x{header[2]:02x} "
                           f"(known: {', '.join(f'0x{k:02x}' for k in _IDX_DTYPES)})")
    ndim = header[3]
    if ndim == 0:
        raise DatasetError(f"{path}: IDX header declares 0 dimensions")
    if len(raw) < 4 + 4 * ndim:
        raise DatasetError(f"{path}: truncated header ({ndim} dimensions need {4 + 4 * ndim} bytes, "
                           f"the file has {len(raw)})")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    itemsize = np.dtype(dtype).itemsize
    if len(body) % itemsize:
        raise DatasetError(f"{path}: {len(body)} data bytes are not a whole number of "
                           f"{itemsize}-byte {_IDX_TYPE_NAMES[header[2]]} elements (truncated?)")
    data = np.frombuffer(body, dtype=dtype)
    expected = int(np.prod(dims, dtype=object))
    if data.size != expected:
        raise DatasetError(f"{path}: header says shape {dims} ({expected} values) but holds {data.size}")
    return data.reshape(dims)


def _find_idx(directory: Path, stem: str) -> Path:
    for candidate in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / candidate).is_file():
            return directory / candidate
    raise DatasetError(f"{directory}: missing {stem} (or {stem}.gz)")


def load_idx_dataset(directory: str | Path, name: str | None = None) -> Dataset:
    """MNIST-format dataset in ``directory``: any image size, labels 0..C-1.

    ``num_classes`` is the largest label + 1 (unchecked; :func:`check_classes`
    enforces that every class is present in training before a run trains).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"{directory}: no such directory (expected the four IDX files {list(IDX_FILES.values())})")
    paths = {key: _find_idx(directory, stem) for key, stem in IDX_FILES.items()}
    arrays = {key: read_idx(path) for key, path in paths.items()}
    xs, ys = {}, {}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        ipath, lpath = paths[f"{split}_images"], paths[f"{split}_labels"]
        if images.ndim < 2:
            raise DatasetError(f"{ipath}: expected images (N x rows x cols), the file holds shape {images.shape}")
        if images.dtype != np.uint8:
            raise DatasetError(f"{ipath}: images must be unsigned bytes (IDX type 0x08), the file holds "
                               f"{images.dtype.name} values")
        if images.shape[0] == 0:
            raise DatasetError(f"{ipath}: holds 0 images")
        if int(np.prod(images.shape[1:])) == 0:
            raise DatasetError(f"{ipath}: images of shape {images.shape[1:]} have no pixels")
        if labels.ndim != 1:
            raise DatasetError(f"{lpath}: expected one label per image (a 1-dimensional IDX file), "
                               f"the file holds shape {labels.shape}")
        if labels.dtype.kind not in "iu":
            raise DatasetError(f"{lpath}: labels must be integers (IDX type 0x08, 0x09, 0x0b or 0x0c), "
                               f"the file holds {labels.dtype.name} values")
        if images.shape[0] != labels.shape[0]:
            raise DatasetError(f"{split} set: {ipath} holds {images.shape[0]} images but {lpath} holds "
                               f"{labels.shape[0]} labels")
        y = labels.astype(np.int64)
        if y.min() < 0:
            i = int(np.argmax(y < 0))
            raise DatasetError(f"{lpath}: label {int(y[i])} at index {i}: labels must be 0..C-1")
        xs[split], ys[split] = images.reshape(images.shape[0], -1), y
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DatasetError(f"{directory}: train images {arrays['train_images'].shape[1:]} and test images "
                           f"{arrays['test_images'].shape[1:]} differ in shape")
    num_classes = int(max(ys["train"].max(), ys["test"].max())) + 1
    return Dataset(name or f"idx:{directory}", xs["train"], ys["train"], xs["test"], ys["test"],
                   tuple(arrays["train_images"].shape[1:]), 8, num_classes,
                   sources={"train_labels": str(paths["train_labels"]), "test_labels": str(paths["test_labels"])})


def _ranges(values: list[int]) -> str:
    """[1, 2, 3, 7] -> '1..3, 7' (at most 6 parts)."""
    parts: list[str] = []
    start = prev = None
    for v in values + [None]:
        if start is not None and (v is None or v != prev + 1):
            parts.append(str(start) if start == prev else f"{start}..{prev}")
            start = None
        if v is not None and start is None:
            start = v
        prev = v
    return ", ".join(parts[:6]) + (", ..." if len(parts) > 6 else "")


def check_classes(dataset: Dataset, num_classes: int | None = None) -> Dataset:
    """The dataset with its class count checked; raises :class:`DatasetError` naming the labels file.

    Labels must be integers 0..C-1 in both splits. Without ``num_classes``
    (``--num-classes``) C is the largest training label + 1 and every class
    must occur in the training set (so a stray label such as 200, or a test
    label never seen in training, is an error rather than a silently larger
    net). With ``num_classes`` the net has that many outputs and classes absent
    from the data are allowed. Fewer than two classes is refused.
    """
    where = {split: dataset.sources.get(f"{split}_labels", f"{dataset.name} {split} labels")
             for split in ("train", "test")}
    y_tr = np.asarray(dataset.y_train)
    y_te = np.asarray(dataset.y_test)
    if len(y_tr) == 0:
        raise DatasetError(f"{where['train']}: the training set is empty")
    for split, y in (("train", y_tr), ("test", y_te)):
        if y.dtype.kind not in "iu":
            raise DatasetError(f"{where[split]}: labels must be integers, got {y.dtype.name}")
        if len(y) and y.min() < 0:
            i = int(np.argmax(y < 0))
            raise DatasetError(f"{where[split]}: label {int(y[i])} at index {i}: labels must be 0..C-1")
    if len(np.unique(y_tr)) < 2:
        raise DatasetError(f"{where['train']}: every training label is {int(y_tr[0])}: a one-class dataset "
                           f"cannot train a classifier (labels must be 0..C-1 with at least 2 classes in "
                           f"training, whatever --num-classes says)")
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
            raise DatasetError(f"--num-classes must be an integer, got {num_classes!r}")
        if num_classes < 2:
            raise DatasetError(f"--num-classes {num_classes}: a classifier needs at least 2 classes")
        for split, y in (("train", y_tr), ("test", y_te)):
            if len(y) and y.max() >= num_classes:
                i = int(np.argmax(y >= num_classes))
                raise DatasetError(f"{where[split]}: label {int(y[i])} at index {i} is out of range for "
                                   f"--num-classes {num_classes} (labels must be 0..{num_classes - 1})")
        return dataclasses.replace(dataset, num_classes=int(num_classes), num_classes_declared=True)
    c = int(y_tr.max()) + 1
    present = np.bincount(y_tr, minlength=c) > 0
    if not present.all():
        missing = [int(k) for k in np.flatnonzero(~present)]
        i = int(np.argmax(y_tr))
        raise DatasetError(
            f"{where['train']}: labels must be 0..C-1 with every class in the training set, but the largest "
            f"label is {c - 1} (index {i}) and class(es) {_ranges(missing)} never occur; fix the labels, or "
            f"give --num-classes if the data really has classes absent from training")
    if len(y_te) and y_te.max() >= c:
        i = int(np.argmax(y_te >= c))
        raise DatasetError(f"{where['test']}: label {int(y_te[i])} at index {i} never occurs in the training "
                           f"set (training labels are 0..{c - 1}); give --num-classes to allow it")
    return dataclasses.replace(dataset, num_classes=c, num_classes_declared=False)


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


def quantize_pixels(x: np.ndarray, from_bits: int, to_bits: int) -> np.ndarray:
    """Keep the top ``to_bits`` of each ``from_bits``-bit pixel: ``x >> (from_bits - to_bits)``.

    The one rule by which a run trained with ``--input-bits`` sees its pixels;
    feed the driver images reduced the same way. ``to_bits = 1`` binarizes at
    half range (MNIST: pixel >= 128), as BNN-PYNQ's LFC does.
    """
    if isinstance(to_bits, bool) or not isinstance(to_bits, int) or not 1 <= to_bits <= from_bits:
        raise DatasetError(f"--input-bits must be an integer 1..{from_bits} (the dataset's pixels have "
                           f"{from_bits} bits), got {to_bits!r}")
    x = np.asarray(x)
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"pixels must be an integer array, got dtype {x.dtype}")
    if x.size and (x.min() < 0 or x.max() >= 1 << from_bits):
        raise ValueError(f"pixels must be unsigned {from_bits}-bit values (0..{(1 << from_bits) - 1}), "
                         f"got values in {x.min()}..{x.max()}")
    return (x >> (from_bits - to_bits)).astype(np.uint8)


def with_input_bits(dataset: Dataset, input_bits: int | None) -> Dataset:
    """``dataset`` with pixels reduced to ``input_bits`` (:func:`quantize_pixels`); None keeps them."""
    if input_bits is None or input_bits == dataset.input_bits:
        return dataset
    return dataclasses.replace(
        dataset, x_train=quantize_pixels(dataset.x_train, dataset.input_bits, input_bits),
        x_test=quantize_pixels(dataset.x_test, dataset.input_bits, input_bits), input_bits=input_bits)


def load_dataset(spec: str, split_seed: int = 0, input_bits: int | None = None) -> Dataset:
    """``digits``, ``mnist`` or ``idx:DIR``, pixels reduced to ``input_bits`` when given."""
    return with_input_bits(_load_source(spec, split_seed), input_bits)


def _load_source(spec: str, split_seed: int) -> Dataset:
    if not isinstance(spec, str):
        raise DatasetError(f"dataset must be a string (digits, mnist or idx:DIR), got {spec!r}")
    if spec == "digits":
        if isinstance(split_seed, bool) or not isinstance(split_seed, int) or not 0 <= split_seed < 2**32:
            raise DatasetError(f"--split-seed must be an integer 0..{2**32 - 1}, got {split_seed!r}")
        return load_digits_dataset(split_seed)
    if spec == "mnist":
        return load_idx_dataset(download_mnist(), name="mnist")
    if spec.startswith("idx:"):
        if not spec[4:]:
            raise DatasetError("--dataset idx: names no folder; use idx:DIR")
        return load_idx_dataset(spec[4:])
    raise DatasetError(f"unknown dataset {spec!r}: use digits, mnist or idx:DIR")
