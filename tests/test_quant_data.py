"""quant.data: digits split, the local MNIST / CIFAR readers on fake folders, and their one-line errors."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from hw_space.design import design_from_dict
from hw_space.errors import CodesignError
from quant.data import check_design_matches, dataset_info, load_dataset
from quant.train import seed_everything


def network(channels: int, size: int, classes: int = 10):
    return design_from_dict({"network": {
        "input": {"channels": channels, "height": size, "width": size, "bits": 8},
        "layers": [{"type": "dense", "out_features": classes, "weight_bits": 4}]}}).network


def write_idx(path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)


def fake_mnist(root, folder="MNIST", n_train=30, n_test=12, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {"train": (rng.integers(0, 256, (n_train, 28, 28)), rng.integers(0, 10, n_train)),
              "test": (rng.integers(0, 256, (n_test, 28, 28)), rng.integers(0, 10, n_test))}
    prefix = {"train": "train", "test": "t10k"}
    for split, (images, labels) in arrays.items():
        write_idx(raw / f"{prefix[split]}-images-idx3-ubyte", images, gz)
        write_idx(raw / f"{prefix[split]}-labels-idx1-ubyte", labels, gz)
    return arrays


def fake_cifar(root, n=8, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        with (folder / name).open("wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data}, fh)
        batches[name] = (data, labels)
    return batches


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- digits

def test_digits_split_is_fixed_stratified_and_in_range():
    ds = load_dataset("digits")
    assert ds.shape == dataset_info("digits").shape
    assert ds.x_train.shape == (1437, 1, 8, 8) and ds.x_test.shape == (360, 1, 8, 8)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert float(ds.x_train.min()) == 0.0 and float(ds.x_train.max()) == 1.0
    assert torch.equal(torch.unique(ds.x_train * 16), torch.arange(17, dtype=torch.float32))
    counts = torch.bincount(ds.y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~36 of each class
    seed_everything(123)  # the training seed must not move the split
    again = load_dataset.__globals__["_load_digits"].__wrapped__()
    assert torch.equal(again.x_test, ds.x_test) and torch.equal(again.y_train, ds.y_train)


def test_digits_are_read_and_split_exactly_as_scikit_learn_does():
    """quant.data reads sklearn's bundled CSV and splits it itself (no ~2 s sklearn import per process):
    the same images, labels and train/test split as load_digits + train_test_split(stratify, seed 0)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from quant.data import stratified_split

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    x_tr, x_te, y_tr, y_te = train_test_split(x, bunch.target, test_size=0.2, stratify=bunch.target, random_state=0)
    ds = load_dataset("digits")
    assert torch.equal(ds.x_train, torch.from_numpy(x_tr)) and torch.equal(ds.x_test, torch.from_numpy(x_te))
    assert ds.y_train.tolist() == y_tr.tolist() and ds.y_test.tolist() == y_te.tolist()
    # other seeds and sizes too (ties between classes' remainders are broken by the same draws)
    y = bunch.target
    for seed, n_test in ((1, 100), (7, 451), (3, 10)):
        train, test = stratified_split(y, n_test, seed)
        want_tr, want_te = train_test_split(np.arange(len(y)), test_size=n_test, stratify=y, random_state=seed)
        assert train.tolist() == want_tr.tolist() and test.tolist() == want_te.tolist()


# ---------------------------------------------------------------- local readers

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_idx_reader_returns_exact_pixels_and_labels(tmp_path, name, folder, gz):
    arrays = fake_mnist(tmp_path, folder=folder, gz=gz)
    ds = load_dataset(name, data_dir=tmp_path)
    assert ds.shape == dataset_info(name).shape
    images, labels = arrays["test"]
    assert ds.x_test.shape == (12, 1, 28, 28)
    assert torch.equal(torch.round(ds.x_test[:, 0] * 255).to(torch.int64), torch.from_numpy(images))
    assert torch.equal(ds.y_test, torch.from_numpy(labels))
    assert len(ds.y_train) == 30


def test_cifar_reader_returns_channels_first_frames(tmp_path):
    batches = fake_cifar(tmp_path)
    ds = load_dataset("cifar10", data_dir=tmp_path)
    assert ds.x_train.shape == (40, 3, 32, 32) and ds.x_test.shape == (8, 3, 32, 32)
    data, labels = batches["data_batch_2"]
    # row layout of a CIFAR batch: 1024 red, then 1024 green, then 1024 blue bytes, each row-major 32x32
    frame = ds.x_train[8 + 3]
    assert round(float(frame[1, 4, 5]) * 255) == data[3, 1024 + 4 * 32 + 5]
    assert ds.y_train[8:16].tolist() == labels
    assert ds.y_test.tolist() == batches["test_batch"][1]


# ---------------------------------------------------------------- errors

def test_missing_folder_names_the_path(tmp_path):
    with pytest.raises(CodesignError) as exc:
        load_dataset("mnist", data_dir=tmp_path / "nowhere")
    assert "nowhere" in one_line(exc) and "MNIST" in one_line(exc)
    with pytest.raises(CodesignError) as exc:
        load_dataset("cifar10", data_dir=tmp_path)
    assert "cifar-10-batches-py" in one_line(exc)


def test_missing_file_names_the_expected_file(tmp_path):
    fake_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(CodesignError) as exc:
        load_dataset("mnist", data_dir=tmp_path)
    assert "t10k-labels-idx1-ubyte" in one_line(exc)


@pytest.mark.parametrize("damage,expect", [
    (lambda raw: b"\x00\x00\x09\x03" + raw[4:], "bad magic"),
    (lambda raw: raw[:-5], "truncated"),
    (lambda raw: gzip.compress(raw)[:20], None),  # written under the plain name: still bad magic
])
def test_malformed_idx_files(tmp_path, damage, expect):
    fake_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CodesignError) as exc:
        load_dataset("mnist", data_dir=tmp_path)
    message = one_line(exc)
    assert "train-images-idx3-ubyte" in message
    if expect:
        assert expect in message


def test_broken_gzip_and_bad_labels(tmp_path):
    fake_mnist(tmp_path, gz=True)
    raw = tmp_path / "MNIST" / "raw"
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(CodesignError) as exc:
        load_dataset("mnist", data_dir=tmp_path)
    assert "t10k-images-idx3-ubyte.gz" in one_line(exc)

    other = tmp_path / "other"
    fake_mnist(other)
    write_idx(other / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.full(30, 12), gz=False)
    with pytest.raises(CodesignError) as exc:
        load_dataset("mnist", data_dir=other)
    assert "label 12" in one_line(exc)

    third = tmp_path / "third"
    fake_mnist(third)
    write_idx(third / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.zeros(29), gz=False)
    with pytest.raises(CodesignError) as exc:
        load_dataset("mnist", data_dir=third)
    assert "30 train images but 29 labels" in one_line(exc)


def test_malformed_cifar_batches(tmp_path):
    fake_cifar(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(b"garbage")
    with pytest.raises(CodesignError) as exc:
        load_dataset("cifar10", data_dir=tmp_path)
    assert "data_batch_3" in one_line(exc)

    wrong = tmp_path / "wrong"
    fake_cifar(wrong)
    with (wrong / "cifar-10-batches-py" / "test_batch").open("wb") as fh:
        pickle.dump({b"labels": [1, 2], b"data": np.zeros((2, 100), dtype=np.uint8)}, fh)
    with pytest.raises(CodesignError) as exc:
        load_dataset("cifar10", data_dir=wrong)
    assert "N x 3072" in one_line(exc)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_pickle_cannot_run_code(tmp_path, capsys):
    fake_cifar(tmp_path)
    with (tmp_path / "cifar-10-batches-py" / "data_batch_1").open("wb") as fh:
        pickle.dump({b"labels": [0], b"data": _Evil()}, fh)
    with pytest.raises(CodesignError) as exc:
        load_dataset("cifar10", data_dir=tmp_path)
    assert "not allowed" in one_line(exc)
    assert "pwned" not in capsys.readouterr().out


def test_unknown_dataset_and_missing_data_dir():
    with pytest.raises(CodesignError) as exc:
        load_dataset("imagenet")
    assert "allowed: digits, mnist, fashion-mnist, cifar10" in one_line(exc)
    with pytest.raises(CodesignError) as exc:
        load_dataset("cifar10")
    assert "--data-dir" in one_line(exc)


def test_mismatched_design_is_refused_in_one_line():
    with pytest.raises(CodesignError) as exc:
        check_design_matches(network(3, 32), "digits")
    assert one_line(exc) == "design input is 3x32x32 but dataset digits is 1x8x8"
    with pytest.raises(CodesignError) as exc:
        check_design_matches(network(1, 8, classes=7), load_dataset("digits"))
    assert "7 classes" in one_line(exc)
    check_design_matches(network(1, 28), "fashion-mnist")  # matches: no error
    check_design_matches(network(3, 32), "cifar10")
