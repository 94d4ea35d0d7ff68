"""Tests of gan_lib.data.images against files written here in the official formats.

References: IDX files built byte by byte with struct (big-endian magic 0x00000803 / 0x00000801),
gzip-compressed or raw; CIFAR-10 batches pickled with protocol 2 as dicts of b'data' (n, 3072)
uint8 and b'labels'; hashlib MD5 of the bytes written; scikit-learn's load_digits for the digits.
Downloads go through file:// URLs (urllib handles them like http), never the network.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from gan_lib.data import images as im

RNG = np.random.default_rng(7)


# --- writers of the official formats -----------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    a = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 0x00000800 | a.ndim
    return struct.pack(">I", magic) + struct.pack(">" + "I" * a.ndim, *a.shape) + a.tobytes()


def write_mnist(folder: Path, split: str, images: np.ndarray, labels: np.ndarray, compress: bool) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "train" if split == "train" else "t10k"
    written = {}
    for stem, arr in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        data = idx_bytes(arr)
        name = stem + (".gz" if compress else "")
        if compress:
            data = gzip.compress(data)
        (folder / name).write_bytes(data)
        written[name] = data
    return written


def cifar_batch_bytes(images: np.ndarray, labels: list[int]) -> bytes:
    data = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(labels), 3072)
    return pickle.dumps({b"batch_label": b"testing", b"labels": list(labels), b"data": data, b"filenames": []}, protocol=2)


def write_cifar(folder: Path, per_batch: int = 3) -> tuple[dict[str, np.ndarray], dict[str, list[int]]]:
    folder.mkdir(parents=True, exist_ok=True)
    imgs, labs = {}, {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = RNG.integers(0, 256, size=(per_batch, 3, 32, 32), dtype=np.uint8)
        y = [int(v) for v in RNG.integers(0, 10, size=per_batch)]
        (folder / name).write_bytes(cifar_batch_bytes(x, y))
        imgs[name], labs[name] = x, y
    return imgs, labs


# --- digits ------------------------------------------------------------------------------------


def test_digits_shapes_range_and_split_against_sklearn():
    bunch = load_digits()
    train, test, full = im.digits("train"), im.digits("test"), im.digits("all")
    assert train.images.shape == (1347, 1, 8, 8) and test.images.shape == (450, 1, 8, 8)
    assert full.images.shape == (1797, 1, 8, 8) and full.images.dtype == torch.float32
    assert float(full.images.min()) == -1.0 and float(full.images.max()) == 1.0
    np.testing.assert_allclose(full.images.numpy()[:, 0], bunch.images / 8.0 - 1.0, atol=1e-6)
    np.testing.assert_array_equal(full.labels.numpy(), bunch.target)
    # the split partitions the data: per-class counts add up to sklearn's, test gets round(n_c / 4)
    counts = np.bincount(bunch.target, minlength=10)
    np.testing.assert_array_equal(np.bincount(test.labels.numpy(), minlength=10), np.round(counts * 0.25).astype(int))
    np.testing.assert_array_equal(
        np.bincount(train.labels.numpy(), minlength=10) + np.bincount(test.labels.numpy(), minlength=10), counts
    )
    # train + test is the whole data set, each image once: compare the multisets of pixel rows
    both = np.concatenate([train.images.numpy(), test.images.numpy()]).reshape(-1, 64)
    multiset = sorted(((r + 1.0) * 8.0).round().astype(np.float64).tobytes() for r in both)
    assert multiset == sorted(r.astype(np.float64).tobytes() for r in bunch.images.reshape(-1, 64))


def test_digits_split_is_deterministic_and_seeded():
    a, b = im.digits("test", seed=3), im.digits("test", seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    c = im.digits("test", seed=4)
    assert not torch.equal(a.images, c.images)
    assert len(im.digits("test", test_fraction=0.5)) == int(np.round(np.bincount(load_digits().target) * 0.5).sum())


@pytest.mark.parametrize(
    "kwargs",
    [{"split": "valid"}, {"test_fraction": 0.0}, {"test_fraction": 1.0}, {"seed": -1}, {"seed": 1.5}],
)
def test_digits_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        im.digits(**kwargs)


def test_to_uint8_inverts_the_scaling():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0, -3.0, 2 * 100 / 255 - 1])
    assert im.to_uint8(x).tolist() == [0, 128, 255, 255, 0, 100]
    with pytest.raises(TypeError):
        im.to_uint8(torch.zeros(3, dtype=torch.uint8))


# --- MNIST -------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_reads_idx_files(tmp_path, compress):
    x = RNG.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    y = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    write_mnist(tmp_path / "mnist", "test", x, y, compress)
    data = im.mnist(tmp_path, "test")
    assert data.images.shape == (5, 1, 28, 28) and data.images.dtype == torch.float32
    np.testing.assert_allclose(data.images.numpy()[:, 0], x / 127.5 - 1.0, atol=1e-6)
    assert data.labels.tolist() == [3, 1, 4, 1, 5] and data.labels.dtype == torch.int64
    assert (data.name, data.split) == ("mnist", "test")
    assert torch.equal(im.to_uint8(data.images)[:, 0], torch.from_numpy(x))


def test_read_idx_header_by_hand(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + bytes([7, 8, 9]))
    np.testing.assert_array_equal(im.read_idx(path), [7, 8, 9])
    path.write_bytes(b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in (2, 1, 3)) + bytes(range(6)))
    np.testing.assert_array_equal(im.read_idx(path), np.arange(6).reshape(2, 1, 3))


def test_mnist_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\.gz.*download=True"):
        im.mnist(tmp_path, "train")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[:-7], "truncated or corrupt"),  # raw file missing its last bytes
        (lambda b: b + b"\x00", "truncated or corrupt"),  # one byte too many
        (lambda b: b"\x01" + b[1:], "not an IDX file"),
        (lambda b: b[:2] + b"\x0d" + b[3:], "not supported"),  # float type code
        (lambda b: b[:6], "header .* truncated"),
    ],
)
def test_mnist_corrupt_raw_files(tmp_path, damage, message):
    x = RNG.integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    written = write_mnist(tmp_path / "mnist", "train", x, np.arange(4, dtype=np.uint8), compress=False)
    target = tmp_path / "mnist" / "train-images-idx3-ubyte"
    target.write_bytes(damage(written[target.name]))
    with pytest.raises(ValueError, match=message) as err:
        im.mnist(tmp_path, "train")
    assert str(target) in str(err.value)


def test_mnist_truncated_gzip_and_mismatched_counts(tmp_path):
    x = RNG.integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    written = write_mnist(tmp_path / "mnist", "train", x, np.arange(4, dtype=np.uint8), compress=True)
    gz = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    gz.write_bytes(written[gz.name][: len(written[gz.name]) // 2])
    with pytest.raises(ValueError, match="damaged gzip") as err:
        im.mnist(tmp_path, "train")
    assert str(gz) in str(err.value)
    write_mnist(tmp_path / "mnist", "train", x, np.arange(3, dtype=np.uint8), compress=True)
    with pytest.raises(ValueError, match="4 images but .* 3 labels"):
        im.mnist(tmp_path, "train")
    write_mnist(tmp_path / "mnist", "train", x, np.array([0, 1, 2, 10], dtype=np.uint8), compress=True)
    with pytest.raises(ValueError, match="label 10"):
        im.mnist(tmp_path, "train")


def test_mnist_download_verifies_checksums(tmp_path, monkeypatch):
    server = tmp_path / "server"
    x = RNG.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    y = np.arange(6, dtype=np.uint8)
    written = write_mnist(server, "train", x, y, compress=True)
    md5 = {name: hashlib.md5(data).hexdigest() for name, data in written.items()}
    monkeypatch.setattr(im, "MNIST_MIRRORS", ("file:///nonexistent-mirror/", server.as_uri() + "/"))
    monkeypatch.setattr(im, "MNIST_MD5", md5)
    cache = tmp_path / "cache"
    with pytest.raises(FileNotFoundError):
        im.mnist(cache, "train", download=False)
    data = im.mnist(cache, "train", download=True)  # the first mirror fails, the second works
    assert data.labels.tolist() == list(range(6))
    for name, content in written.items():
        assert (cache / "mnist" / name).read_bytes() == content
    # a wrong checksum: nothing is written, the error names the URL and both digests
    (cache / "mnist" / "train-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setattr(im, "MNIST_MD5", {**md5, "train-labels-idx1-ubyte.gz": "0" * 32})
    with pytest.raises(OSError, match="checksum mismatch") as err:
        im.mnist(cache, "train", download=True)
    assert md5["train-labels-idx1-ubyte.gz"] in str(err.value) and "0" * 32 in str(err.value)
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == ["train-images-idx3-ubyte.gz"]


def test_fetch_verified_is_atomic(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello idx")
    dest = tmp_path / "out" / "file.bin"
    good = hashlib.md5(b"hello idx").hexdigest()
    dest.parent.mkdir()
    dest.write_bytes(b"old content")
    with pytest.raises(ValueError, match="checksum mismatch"):
        im.fetch_verified(src.as_uri(), dest, "f" * 32)
    assert dest.read_bytes() == b"old content" and [p.name for p in dest.parent.iterdir()] == ["file.bin"]
    assert im.fetch_verified(src.as_uri(), dest, good.upper()) == dest
    assert dest.read_bytes() == b"hello idx" and im.md5_of(dest) == good
    with pytest.raises(OSError, match="could not download"):
        im.fetch_verified((tmp_path / "missing").as_uri(), dest, good)
    assert [p.name for p in dest.parent.iterdir()] == ["file.bin"]


# --- CIFAR-10 ----------------------------------------------------------------------------------


def test_cifar10_reads_python_batches(tmp_path):
    imgs, labs = write_cifar(tmp_path / "cifar-10-batches-py")
    train = im.cifar10(tmp_path, "train")
    test = im.cifar10(tmp_path, "test")
    assert train.images.shape == (15, 3, 32, 32) and test.images.shape == (3, 3, 32, 32)
    expected = np.concatenate([imgs[f"data_batch_{i}"] for i in range(1, 6)])
    np.testing.assert_allclose(train.images.numpy(), expected / 127.5 - 1.0, atol=1e-6)
    assert train.labels.tolist() == sum((labs[f"data_batch_{i}"] for i in range(1, 6)), [])
    # the channel layout: row 0 of the flat array is red pixel (0, 0), entry 1024 green (0, 0)
    flat = imgs["test_batch"].reshape(3, 3072)
    assert im.to_uint8(test.images)[1, 1, 0, 0] == flat[1, 1024]
    assert im.to_uint8(test.images)[2, 2, 31, 30] == flat[2, 2048 + 31 * 32 + 30]


def test_cifar10_missing_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data_batch_1 is missing.*download=True"):
        im.cifar10(tmp_path, "train")
    write_cifar(tmp_path / "cifar-10-batches-py")
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    whole = batch.read_bytes()
    batch.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt") as err:
        im.cifar10(tmp_path, "test")
    assert str(batch) in str(err.value)
    batch.write_bytes(pickle.dumps({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]}, protocol=2))
    with pytest.raises(ValueError, match=r"\(n, 3072\)"):
        im.cifar10(tmp_path, "test")
    batch.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, protocol=2))
    with pytest.raises(ValueError, match="must hold 2 integers"):
        im.cifar10(tmp_path, "test")
    batch.write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [11]}, protocol=2))
    with pytest.raises(ValueError, match="0..9"):
        im.cifar10(tmp_path, "test")
    # a pickle that would call an arbitrary function is refused, not run
    batch.write_bytes(pickle.dumps({b"data": Path("x"), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match="not allowed"):
        im.cifar10(tmp_path, "test")


def test_cifar10_download_extracts_verified_archive(tmp_path, monkeypatch):
    staging = tmp_path / "staging"
    imgs, labs = write_cifar(staging / "cifar-10-batches-py", per_batch=2)
    (staging / "cifar-10-batches-py" / "batches.meta").write_bytes(pickle.dumps({b"label_names": []}, protocol=2))
    archive = tmp_path / "server" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    batch_md5 = {name: im.md5_of(staging / "cifar-10-batches-py" / name) for name in im.CIFAR10_BATCH_MD5}
    monkeypatch.setattr(im, "CIFAR10_URL", archive.as_uri())
    monkeypatch.setattr(im, "CIFAR10_BATCH_MD5", batch_md5)
    cache = tmp_path / "cache"
    monkeypatch.setattr(im, "CIFAR10_ARCHIVE_MD5", "1" * 32)  # wrong: nothing is extracted
    with pytest.raises(ValueError, match="checksum mismatch"):
        im.cifar10(cache, "test", download=True)
    assert not (cache / "cifar-10-batches-py").exists()
    monkeypatch.setattr(im, "CIFAR10_ARCHIVE_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    test = im.cifar10(cache, "test", download=True)
    assert test.labels.tolist() == labs["test_batch"]
    np.testing.assert_array_equal(im.to_uint8(test.images).numpy(), imgs["test_batch"])
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    # a batch whose checksum does not match the published one stops the extraction
    monkeypatch.setattr(im, "CIFAR10_BATCH_MD5", {**batch_md5, "data_batch_3": "2" * 32})
    (cache / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(ValueError, match="data_batch_3 has MD5"):
        im.cifar10(cache, "train", download=True)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="split"):
        im.mnist(tmp_path, "validation")
    with pytest.raises(ValueError, match="download"):
        im.cifar10(tmp_path, "train", download=1)
    with pytest.raises(TypeError, match="root"):
        im.mnist(3, "train")


def test_default_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GANBOOK_DATA", str(tmp_path))
    assert im.default_root() == tmp_path
    monkeypatch.delenv("GANBOOK_DATA")
    assert im.default_root() == Path.home() / ".cache" / "ganbook"
