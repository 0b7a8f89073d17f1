"""Datasets for QAT: the embedded `digits`, and MNIST / Fashion-MNIST / CIFAR-10 read from local raw files.

The local readers parse the raw files themselves (IDX files, CIFAR python pickles), so torchvision is
not needed. MNIST and Fashion-MNIST are found either in torchvision's layout (`ROOT/MNIST/raw`,
`ROOT/FashionMNIST/raw`) or directly in `ROOT` when it holds the four IDX files (a "flat" folder, as
Debian's `dataset-fashion-mnist` package installs in /usr/share/datasets/fashion-mnist).

Every dataset is returned as float32 tensors in [0, 1], shape (N, C, H, W), with int64 labels.
Nothing downloads unless `download=True` is passed explicitly.
"""

from __future__ import annotations

import gzip
import pickle
import shutil
import struct
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from hw_space.design import Network, Shape
from hw_space.errors import CodesignError

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0  # fixed: the test split never depends on the training seed


@dataclass(frozen=True)
class DatasetInfo:
    """What is known about a dataset before loading it: frame shape and class count."""

    name: str
    shape: Shape
    num_classes: int


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", Shape(1, 8, 8), 10),
    "mnist": DatasetInfo("mnist", Shape(1, 28, 28), 10),
    "fashion-mnist": DatasetInfo("fashion-mnist", Shape(1, 28, 28), 10),
    "cifar10": DatasetInfo("cifar10", Shape(3, 32, 32), 10),
}


@dataclass(frozen=True)
class Dataset:
    """A loaded train/test split. Tensors are shared between callers: never modify them in place."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def shape(self) -> Shape:
        _, c, h, w = self.x_train.shape
        return Shape(c, h, w)


def dataset_info(name: str) -> DatasetInfo:
    """The DatasetInfo of a known dataset name, or one CodesignError line listing the names."""
    if name not in DATASETS:
        raise CodesignError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    return DATASETS[name]


def _fmt(shape: Shape) -> str:
    return f"{shape.channels}x{shape.height}x{shape.width}"


def check_design_matches(network: Network, dataset: Dataset | DatasetInfo | str) -> None:
    """Refuse, in one line, a network whose input shape or class count differs from the dataset's."""
    if isinstance(dataset, str):
        dataset = dataset_info(dataset)
    net_shape = Shape(network.input.channels, network.input.height, network.input.width)
    if net_shape != dataset.shape:
        raise CodesignError(f"design input is {_fmt(net_shape)} but dataset {dataset.name} is {_fmt(dataset.shape)}")
    if network.num_classes != dataset.num_classes:
        raise CodesignError(f"design outputs {network.num_classes} classes (last layer out_features) "
                            f"but dataset {dataset.name} has {dataset.num_classes}")


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = False) -> Dataset:
    """Load a dataset by name (cached per name and folder); local ones need `data_dir`."""
    dataset_info(name)
    if name == "digits":
        return _load_digits()
    if data_dir is None:
        raise CodesignError(f"dataset {name} needs --data-dir (a folder in torchvision's layout"
                            f"{', or one holding the four IDX files' if name in _IDX_FOLDER else ''}); "
                            "only digits is embedded")
    root = Path(data_dir).expanduser().resolve()
    if download:
        _download(name, root)
    return _load_local(name, str(root))


# ---------------------------------------------------------------- digits (embedded in scikit-learn)

@lru_cache(maxsize=1)
def _load_digits() -> Dataset:
    """scikit-learn's digits (its bundled CSV, read directly: importing sklearn costs ~2 s a process),
    split as sklearn's train_test_split(test_size=0.2, stratify=y, random_state=0) splits it."""
    data = np.loadtxt(gzip.open(_digits_csv(), "rt"), delimiter=",")
    x = (data[:, :-1].reshape(-1, 8, 8).astype(np.float32) / 16.0)[:, None, :, :]
    y = data[:, -1].astype(np.int64)
    train, test = stratified_split(y, int(np.ceil(DIGITS_TEST_FRACTION * len(y))), DIGITS_SPLIT_SEED)
    return _make("digits", x[train], y[train], x[test], y[test])


def _digits_csv() -> Path:
    """scikit-learn's bundled digits file (found without importing sklearn)."""
    from importlib.util import find_spec

    spec = find_spec("sklearn")
    path = Path(next(iter(spec.submodule_search_locations or []), "")) / "datasets" / "data" / "digits.csv.gz" \
        if spec is not None else None
    if path is None or not path.is_file():
        raise CodesignError("dataset digits: scikit-learn's bundled digits.csv.gz was not found; "
                            "install scikit-learn (pip install scikit-learn)")
    return path


def stratified_split(y: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: the stratified shuffle split of scikit-learn's StratifiedShuffleSplit
    (sklearn/model_selection/_split.py, with _approximate_mode of sklearn/utils/extmath.py), drawn from
    np.random.RandomState(seed) in the same order, so the digits split stays what it always was."""
    rng = np.random.RandomState(seed)
    n_train = len(y) - n_test
    _, y_idx, counts = np.unique(y, return_inverse=True, return_counts=True)
    by_class = np.split(np.argsort(y_idx, kind="stable"), np.cumsum(counts)[:-1])
    n_i = _approximate_mode(counts, n_train, rng)
    t_i = _approximate_mode(counts - n_i, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    for i, members in enumerate(by_class):
        perm = members.take(rng.permutation(counts[i]), mode="clip")
        train.extend(perm[:n_i[i]])
        test.extend(perm[n_i[i]:n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


def _approximate_mode(counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Draws per class: floor of the proportional share, the rest to the largest remainders (ties
    broken by rng), as scikit-learn's _approximate_mode."""
    continuous = counts / counts.sum() * n_draws
    floored = np.floor(continuous)
    need = int(n_draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add = min(len(inds), need)
            floored[rng.choice(inds, size=add, replace=False)] += 1
            need -= add
            if need == 0:
                break
    return floored.astype(int)


def _make(name: str, x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray) -> Dataset:
    return Dataset(name=name, x_train=torch.from_numpy(np.ascontiguousarray(x_tr, dtype=np.float32)),
                   y_train=torch.from_numpy(np.ascontiguousarray(y_tr, dtype=np.int64)),
                   x_test=torch.from_numpy(np.ascontiguousarray(x_te, dtype=np.float32)),
                   y_test=torch.from_numpy(np.ascontiguousarray(y_te, dtype=np.int64)),
                   num_classes=DATASETS[name].num_classes)


# ---------------------------------------------------------------- local folders (torchvision layout)

_IDX_FOLDER = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"


_IDX_BASES = (*_IDX_FILES["train"], *_IDX_FILES["test"])


def expected_folder(name: str, root: str | Path) -> Path:
    """The folder holding a local dataset's raw files under `root` in torchvision's layout."""
    root = Path(root)
    if name == "cifar10":
        return root / _CIFAR_FOLDER
    return root / _IDX_FOLDER[name] / "raw"


def _idx_path(folder: Path, base: str) -> Path | None:
    """The IDX file `base` in `folder`, plain or gzipped (plain first), or None when neither is a file."""
    for candidate in (folder / base, folder / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


def idx_folder(name: str, root: str | Path) -> Path:
    """Where an IDX dataset's four files are under `root`: torchvision's `ROOT/<Name>/raw` or `root` itself.

    The first of the two that holds all four files (each plain or gzipped) wins; when neither does,
    one CodesignError line names the first missing file of the layout that holds some, or both layouts.
    """
    root = Path(root)
    layouts = (expected_folder(name, root), root)
    for folder in layouts:
        if all(_idx_path(folder, base) for base in _IDX_BASES):
            return folder
    for folder in layouts:
        if any(_idx_path(folder, base) for base in _IDX_BASES):
            missing = next(base for base in _IDX_BASES if _idx_path(folder, base) is None)
            raise CodesignError(f"dataset {name}: file {folder / missing} (or {missing}.gz) not found")
    raise CodesignError(f"dataset {name}: no IDX files in {root} or {layouts[0]} (torchvision layout); "
                        f"expected {', '.join(_IDX_BASES)} (each plain or .gz) in one of them, or pass --download")


@lru_cache(maxsize=2)
def _load_local(name: str, root: str) -> Dataset:
    if not Path(root).is_dir():
        where = expected_folder(name, root)
        also = f" or the four IDX files in {root}" if name in _IDX_FOLDER else ""
        raise CodesignError(f"dataset {name}: data folder {root} does not exist; "
                            f"expected {where} (torchvision layout){also}, or pass --download")
    if name == "cifar10":
        folder = expected_folder(name, root)
        if not folder.is_dir():
            raise CodesignError(f"dataset {name}: folder {folder} not found; put the raw files there "
                                "(torchvision layout) or pass --download")
        return _load_cifar(folder)
    folder = idx_folder(name, root)
    x_tr, y_tr = _read_idx_pair(name, folder, "train")
    x_te, y_te = _read_idx_pair(name, folder, "test")
    return _make(name, x_tr, y_tr, x_te, y_te)


def _read_idx_pair(name: str, folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_name, labels_name = _IDX_FILES[split]
    images_path, labels_path = _find(name, folder, images_name), _find(name, folder, labels_name)
    images = _read_idx(name, images_path, ndim=3)
    labels = _read_idx(name, labels_path, ndim=1)
    frame = DATASETS[name].shape
    if images.shape[1:] != (frame.height, frame.width):
        raise CodesignError(f"dataset {name}: {images_path} holds {images.shape[1]}x{images.shape[2]} images; "
                            f"expected {frame.height}x{frame.width}")
    if len(images) != len(labels):
        raise CodesignError(f"dataset {name}: {folder} has {len(images)} {split} images but {len(labels)} labels")
    _check_labels(name, labels_path, labels, DATASETS[name].num_classes)
    return (images.astype(np.float32) / 255.0)[:, None, :, :], labels.astype(np.int64)


def _find(name: str, folder: Path, base: str) -> Path:
    path = _idx_path(folder, base)
    if path is None:
        raise CodesignError(f"dataset {name}: file {folder / base} (or {base}.gz) not found")
    return path


def _read_idx(name: str, path: Path, ndim: int) -> np.ndarray:
    """Parse one IDX file of unsigned bytes.

    Format (LeCun et al., "THE MNIST DATABASE of handwritten digits", section "FILE FORMATS FOR THE
    MNIST DATABASE"; Fashion-MNIST uses the same files): magic number = two zero bytes, the type byte
    0x08 (unsigned byte) and the number of dimensions; then each dimension as a big-endian 32-bit
    unsigned integer; then the data, row-major, one byte per value. Gzipped when the name ends in .gz.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise CodesignError(f"dataset {name}: cannot read {path}: {exc}") from None
    if len(raw) < 4 + 4 * ndim or raw[0:3] != b"\x00\x00\x08" or raw[3] != ndim:
        raise CodesignError(f"dataset {name}: {path} is not an idx file of unsigned bytes with {ndim} "
                            "dimension(s) (bad magic number)")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)):
        raise CodesignError(f"dataset {name}: {path} is truncated or padded: header says "
                            f"{'x'.join(map(str, dims))} = {int(np.prod(dims))} bytes, file has {len(body)}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _check_labels(name: str, path: Path, labels: np.ndarray, classes: int) -> None:
    if labels.size and int(labels.max()) >= classes:
        raise CodesignError(f"dataset {name}: {path} has label {int(labels.max())}; allowed: 0..{classes - 1}")


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numpy arrays: a CIFAR batch file cannot run code."""

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("numpy._core.numeric", "_frombuffer"),
                ("numpy.core.numeric", "_frombuffer")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def _read_cifar_batch(folder: Path, base: str) -> tuple[np.ndarray, np.ndarray]:
    path = folder / base
    if not path.is_file():
        raise CodesignError(f"dataset cifar10: file {path} not found (CIFAR-10 python batches expected)")
    try:
        with path.open("rb") as fh:
            batch = _CifarUnpickler(fh, encoding="bytes").load()
        data = np.asarray(batch[b"data"] if b"data" in batch else batch["data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"] if b"labels" in batch else batch["labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CodesignError(f"dataset cifar10: {path} is not a CIFAR-10 python batch "
                            f"(a pickled dict with data and labels): {exc}") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise CodesignError(f"dataset cifar10: {path} holds data of shape {data.shape} and {len(labels)} labels; "
                            "expected N x 3072 bytes and N labels")
    _check_labels("cifar10", path, labels, 10)
    return data.reshape(-1, 3, 32, 32), labels


def _load_cifar(folder: Path) -> Dataset:
    parts = [_read_cifar_batch(folder, base) for base in _CIFAR_TRAIN]
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    x_te, y_te = _read_cifar_batch(folder, _CIFAR_TEST)
    return _make("cifar10", x_tr.astype(np.float32) / 255.0, y_tr, x_te.astype(np.float32) / 255.0, y_te)


# ---------------------------------------------------------------- download (only on explicit request)

_MNIST_URLS = {"mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
               "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"}
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


def _download(name: str, root: Path) -> None:
    """Fetch a dataset's raw files into torchvision's layout under `root` (skips files already there).

    A flat folder that already holds all four IDX files needs nothing: it is read as it is.
    """
    folder = expected_folder(name, root)
    if name in _IDX_FOLDER and all(_idx_path(root, base) for base in _IDX_BASES):
        return
    try:
        if name == "cifar10":
            if all((folder / b).is_file() for b in (*_CIFAR_TRAIN, _CIFAR_TEST)):
                return
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=root) as tmp:
                archive = Path(tmp) / "cifar-10-python.tar.gz"
                _fetch(_CIFAR_URL, archive)
                with tarfile.open(archive) as tar:
                    tar.extractall(root, filter="data")
            return
        folder.mkdir(parents=True, exist_ok=True)
        for base in _IDX_BASES:
            if _idx_path(folder, base) is None:
                _fetch(_MNIST_URLS[name] + f"{base}.gz", folder / f"{base}.gz")
    except (OSError, tarfile.TarError) as exc:
        raise CodesignError(f"dataset {name}: download into {root} failed: {exc}") from None


def _fetch(url: str, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.part")
    with urllib.request.urlopen(url, timeout=60) as response, tmp.open("wb") as fh:
        shutil.copyfileobj(response, fh)
    tmp.replace(dest)
