"""quant.data: MNIST / Fashion-MNIST from a flat folder of IDX files or torchvision's layout.

Synthetic IDX files are written here in tmp_path (plain and gzipped); one test reads the real files of
Debian's `dataset-fashion-mnist` package where it is installed and is skipped with the reason elsewhere.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from hw_space.errors import CodesignError
from quant.data import idx_folder, load_dataset

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
BASES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
TORCHVISION = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: 0, 0, 0x08, ndim, big-endian uint32 dims, then the data."""
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def write_split(folder: Path, gz: bool, n_train: int = 20, n_test: int = 7, seed: int = 0,
                size: int = 28) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The four IDX files in `folder`, plain or gzipped; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = rng.integers(0, 256, (n, size, size)), rng.integers(0, 10, n)
        for base, array in zip(BASES[split], (images, labels), strict=True):
            raw = idx_bytes(array)
            (folder / (base + ".gz" if gz else base)).write_bytes(gzip.compress(raw) if gz else raw)
        arrays[split] = (images, labels)
    return arrays


def file_of(folder: Path, base: str) -> Path:
    return next(p for p in (folder / base, folder / f"{base}.gz") if p.is_file())


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def same(ds, arrays) -> None:
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        images, labels = arrays[split]
        assert x.shape == (len(labels), 1, 28, 28) and x.dtype == torch.float32
        assert torch.equal(torch.round(x[:, 0] * 255).to(torch.int64), torch.from_numpy(images))
        assert torch.equal(y, torch.from_numpy(labels))


# ---------------------------------------------------------------- both layouts, plain and gzipped

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_both_layouts_read_exact_pixels_and_labels(tmp_path, name, gz, layout):
    folder = tmp_path if layout == "flat" else tmp_path / TORCHVISION[name] / "raw"
    arrays = write_split(folder, gz=gz)
    assert idx_folder(name, tmp_path) == folder
    same(load_dataset(name, data_dir=tmp_path), arrays)


def test_a_mix_of_plain_and_gzipped_files_in_a_flat_folder(tmp_path):
    arrays = write_split(tmp_path, gz=True)
    plain = tmp_path / "t10k-images-idx3-ubyte"
    plain.write_bytes(gzip.decompress((tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes()))
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    same(load_dataset("fashion-mnist", data_dir=tmp_path), arrays)


def test_torchvision_layout_wins_when_both_are_complete(tmp_path):
    write_split(tmp_path, gz=False, seed=1)
    arrays = write_split(tmp_path / "MNIST" / "raw", gz=True, seed=2)
    same(load_dataset("mnist", data_dir=tmp_path), arrays)


def test_flat_folder_is_used_when_the_torchvision_folder_is_empty(tmp_path):
    (tmp_path / "FashionMNIST" / "raw").mkdir(parents=True)
    arrays = write_split(tmp_path, gz=True)
    same(load_dataset("fashion-mnist", data_dir=tmp_path), arrays)


def test_download_skips_a_complete_flat_folder(tmp_path, monkeypatch):
    import quant.data as data

    def no_network(url: str, dest: Path) -> None:
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(data, "_fetch", no_network)
    arrays = write_split(tmp_path, gz=True)
    same(load_dataset("fashion-mnist", data_dir=tmp_path, download=True), arrays)
    assert not (tmp_path / "FashionMNIST").exists()


# ---------------------------------------------------------------- one-line errors naming the file

def test_missing_file_in_a_flat_folder_names_it(tmp_path):
    write_split(tmp_path, gz=True)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(CodesignError) as exc:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    assert str(tmp_path / "train-labels-idx1-ubyte") in one_line(exc)


def test_folder_without_idx_files_names_both_layouts(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(CodesignError) as exc:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    message = one_line(exc)
    assert str(tmp_path) in message and str(tmp_path / "FashionMNIST" / "raw") in message
    assert "t10k-labels-idx1-ubyte" in message and "--download" in message


def test_missing_data_dir_names_the_flat_choice(tmp_path):
    with pytest.raises(CodesignError) as exc:
        load_dataset("fashion-mnist", data_dir=tmp_path / "nowhere")
    assert "nowhere" in one_line(exc) and "four IDX files" in one_line(exc)
    with pytest.raises(CodesignError) as exc:
        load_dataset("mnist")
    assert "--data-dir" in one_line(exc) and "IDX" in one_line(exc)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("base", ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
@pytest.mark.parametrize("damage,expect", [
    (lambda raw: raw[:-3], "truncated"),
    (lambda raw: raw + b"\x00", "padded"),
    (lambda raw: raw[:6], "bad magic"),  # shorter than its own header
    (lambda raw: b"\x00\x00\x0b" + raw[3:], "bad magic"),  # type 0x0B: 16-bit integers, not bytes
    (lambda raw: b"\x00\x00\x08\x02" + raw[4:], "bad magic"),  # wrong number of dimensions
    (lambda raw: b"", "bad magic"),
])
def test_damaged_files_give_one_line_naming_the_file(tmp_path, gz, base, damage, expect):
    write_split(tmp_path, gz=gz)
    path = file_of(tmp_path, base)
    raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    bad = damage(raw)
    path.write_bytes(gzip.compress(bad) if gz else bad)
    with pytest.raises(CodesignError) as exc:
        load_dataset("mnist", data_dir=tmp_path)
    message = one_line(exc)
    assert str(path) in message and expect in message


def test_broken_and_cut_gzip_streams_name_the_file(tmp_path):
    write_split(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])  # a gzip stream cut short
    with pytest.raises(CodesignError) as exc:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    assert str(path) in one_line(exc) and "cannot read" in one_line(exc)

    other = tmp_path / "other"
    write_split(other, gz=True)
    (other / "t10k-labels-idx1-ubyte.gz").write_bytes(b"plain text, not gzip")
    with pytest.raises(CodesignError) as exc:
        load_dataset("fashion-mnist", data_dir=other)
    assert str(other / "t10k-labels-idx1-ubyte.gz") in one_line(exc)


def test_wrong_frame_size_count_mismatch_and_label_range(tmp_path):
    write_split(tmp_path, gz=False, size=32)
    with pytest.raises(CodesignError) as exc:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    assert "train-images-idx3-ubyte holds 32x32 images; expected 28x28" in one_line(exc)

    counts = tmp_path / "counts"
    write_split(counts, gz=True)
    (counts / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(6))))
    with pytest.raises(CodesignError) as exc:
        load_dataset("fashion-mnist", data_dir=counts)
    assert "7 test images but 6 labels" in one_line(exc)

    labels = tmp_path / "labels"
    write_split(labels, gz=True)
    (labels / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.full(20, 10))))
    with pytest.raises(CodesignError) as exc:
        load_dataset("fashion-mnist", data_dir=labels)
    assert str(labels / "train-labels-idx1-ubyte.gz") in one_line(exc) and "label 10" in one_line(exc)


# ---------------------------------------------------------------- the real files, where installed

DEBIAN_INSTALLED = all((DEBIAN_FASHION / f"{base}.gz").is_file() for split in BASES.values() for base in split)


@pytest.mark.skipif(not DEBIAN_INSTALLED, reason=f"Fashion-MNIST IDX files not in {DEBIAN_FASHION} "
                           "(Debian package dataset-fashion-mnist not installed)")
def test_real_fashion_mnist_from_the_debian_package():
    ds = load_dataset("fashion-mnist", data_dir=DEBIAN_FASHION)
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    # Fashion-MNIST is balanced: 6,000 training and 1,000 test images per class (its README)
    assert torch.bincount(ds.y_train, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(ds.y_test, minlength=10).tolist() == [1000] * 10
    assert float(ds.x_train.min()) == 0.0 and float(ds.x_train.max()) == 1.0
    assert ds.x_test.dtype == torch.float32 and ds.y_test.dtype == torch.int64
