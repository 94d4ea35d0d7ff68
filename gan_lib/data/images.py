r"""Image data sets as float tensors in ``[-1, 1]``: scikit-learn's 8x8 digits, MNIST and CIFAR-10.

No torchvision: the two standard file formats are read here directly.

- :func:`digits` -- the 1,797 8x8 handwritten digits shipped inside scikit-learn
  (:func:`sklearn.datasets.load_digits`, UCI "optdigits" test set), split into a train and a test
  (reference) part by a seeded, class-stratified permutation. Needs no file and no network.
- :func:`mnist` -- MNIST (LeCun et al. 1998) from its four IDX files. An IDX file starts with two
  zero bytes, a type byte (``0x08``: unsigned byte) and the number of dimensions, then one
  big-endian ``uint32`` per dimension and the data in C order: images carry the magic number
  ``0x00000803`` (``n, 28, 28``), labels ``0x00000801`` (``n``). Files may be gzip-compressed
  (``*.gz``, as distributed) or raw.
- :func:`cifar10` -- CIFAR-10 (Krizhevsky 2009) from the "python version" batches
  ``cifar-10-batches-py/data_batch_1`` ... ``data_batch_5`` and ``test_batch``: pickled dicts whose
  ``b"data"`` is a ``(10000, 3072)`` ``uint8`` array (1024 red, then 1024 green, then 1024 blue
  values, each a 32x32 image in row-major order) and ``b"labels"`` a list of ints in ``0..9``. The
  pickles are read by an unpickler that only builds NumPy arrays, bytes and plain containers.

Files live under a cache folder (:func:`default_root`: ``$GANBOOK_DATA`` or ``~/.cache/ganbook``).
With ``download=True`` a missing file is fetched once from the official address, its MD5 checksum
compared with the published one, and only then moved into place (temp file + :func:`os.replace`),
so an interrupted or corrupted download never leaves a file that looks complete. Checksums are
checked when downloading; when loading, the format itself is checked (magic number, header against
file length, label range), and a file that fails is named in a ``ValueError`` saying what to do.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gan_lib.files import atomic_open, temp_dir
from gan_lib.validation import boolean, integer_number, one_of, real_number

__all__ = [
    "ImageSet",
    "default_root",
    "md5_of",
    "fetch_verified",
    "to_uint8",
    "digits",
    "read_idx",
    "mnist",
    "read_cifar_batch",
    "cifar10",
    "MNIST_MIRRORS",
    "MNIST_MD5",
    "CIFAR10_URL",
    "CIFAR10_ARCHIVE_MD5",
    "CIFAR10_BATCH_MD5",
]

# ------------------------------------------------------------------------------------------------
# Official addresses and checksums
# ------------------------------------------------------------------------------------------------

#: Where the four MNIST files are fetched from, tried in order: PyTorch's mirror of the original
#: files (the original site http://yann.lecun.com/exdb/mnist/ often refuses automated downloads),
#: then the original site.
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
#: MD5 of the four gzip files as distributed by Yann LeCun's MNIST page. Source: the checksums
#: published with torchvision's MNIST loader (``torchvision.datasets.MNIST.resources``), which
#: verify the files on the original site and on the mirror alike.
MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_MNIST_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: The CIFAR-10 "python version" archive on Alex Krizhevsky's page
#: (https://www.cs.toronto.edu/~kriz/cifar.html).
CIFAR10_URL: str = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
#: MD5 of that archive as published on the same page.
CIFAR10_ARCHIVE_MD5: str = "c58f30108f718f92721af3b95e74349a"
#: MD5 of each batch inside the archive (as listed by torchvision's CIFAR10 loader); checked once,
#: right after extraction.
CIFAR10_BATCH_MD5: dict[str, str] = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR_SPLIT_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}

_SPLIT = one_of("train", "test")


def _checked(name: str, validator: Any, value: Any) -> Any:
    try:
        return validator(value)
    except ValueError as err:
        raise ValueError(f"{name}={value!r} not allowed: {err}") from None


# ------------------------------------------------------------------------------------------------
# The returned object
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images and labels of one split of one data set.

    ``images``: ``float32`` tensor ``(N, C, H, W)`` with values in ``[-1, 1]`` (pixel intensity
    ``v`` in ``[0, v_max]`` mapped to ``2 v / v_max - 1``); ``labels``: ``int64`` tensor ``(N,)``
    of classes ``0 .. n_classes - 1``.
    """

    images: Tensor
    labels: Tensor
    name: str  #: ``"digits"``, ``"mnist"`` or ``"cifar10"``
    split: str  #: ``"train"``, ``"test"`` or ``"all"``
    n_classes: int = 10

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]


def to_uint8(images: Tensor) -> Tensor:
    """Map images in ``[-1, 1]`` back to ``uint8`` pixel values ``round(127.5 (x + 1))`` in ``[0, 255]``
    (values outside ``[-1, 1]`` are clipped)."""
    if not isinstance(images, Tensor) or not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor; got {type(images).__name__}")
    return ((images.detach().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)


def _to_unit_range(pixels: np.ndarray, v_max: float) -> Tensor:
    return torch.from_numpy(pixels.astype(np.float32) * np.float32(2.0 / v_max) - np.float32(1.0))


# ------------------------------------------------------------------------------------------------
# Files: cache folder, checksums, verified download
# ------------------------------------------------------------------------------------------------


def default_root() -> Path:
    """The cache folder for downloaded data: ``$GANBOOK_DATA`` if set, else ``~/.cache/ganbook``."""
    return Path(os.environ.get("GANBOOK_DATA") or Path.home() / ".cache" / "ganbook").expanduser()


def _root(root: str | os.PathLike[str] | None) -> Path:
    if root is None:
        return default_root()
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path (str or os.PathLike) or None; got {type(root).__name__}")
    return Path(root).expanduser()


def md5_of(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hexadecimal MD5 digest of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_verified(url: str, path: str | os.PathLike[str], md5: str, *, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``path`` if its MD5 is ``md5``; return ``path``.

    The bytes go to a temporary file next to ``path`` while their MD5 is computed; on a match the
    temporary file is renamed onto ``path`` (:func:`os.replace`, atomic on one file system), on a
    mismatch or any error it is deleted and a ``ValueError`` (checksum) or ``OSError`` (network,
    disk) names the address and the target. Any scheme :func:`urllib.request.urlopen` knows works,
    ``file://`` included.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.md5(usedforsecurity=False)
    with atomic_open(target, "wb") as out:  # kept only if the whole file arrives with the right MD5
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed, official URLs)
                for block in iter(lambda: response.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
        except OSError as err:
            raise OSError(f"could not download {url} to {target}: {err}") from err
        got = digest.hexdigest()
        if got != md5.lower():
            raise ValueError(
                f"checksum mismatch for {url}: MD5 {got}, expected {md5.lower()}; the download is "
                f"corrupt or not the official file, and {target} was not written. Try again later, or "
                f"fetch the file yourself, check its MD5 and put it at {target}"
            )
    return target


# ------------------------------------------------------------------------------------------------
# scikit-learn's 8x8 digits
# ------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.asarray(bunch.images, dtype=np.float64)  # (1797, 8, 8), values 0..16
    labels = np.asarray(bunch.target, dtype=np.int64)
    pixels.flags.writeable = False
    labels.flags.writeable = False
    return pixels, labels


def digits(split: str = "train", *, test_fraction: float = 0.25, seed: int = 0) -> ImageSet:
    r"""scikit-learn's 1,797 handwritten digits, ``(N, 1, 8, 8)`` in ``[-1, 1]``, labels ``0..9``.

    Each image holds counts ``0..16`` (ink in 4x4 blocks of a 32x32 bitmap), mapped to
    ``2 v / 16 - 1``. The split is stratified: for each class ``c`` with ``n_c`` images, a
    permutation drawn by ``numpy.random.default_rng(seed + c)`` sends its first
    ``round(test_fraction * n_c)`` images to ``"test"`` (the reference split of the book's metrics)
    and the rest to ``"train"``; within a split images keep scikit-learn's order. ``"all"`` returns
    all 1,797 in that order. The same ``(test_fraction, seed)`` always gives the same split.
    """
    split = _checked("split", one_of("train", "test", "all"), split)
    test_fraction = _checked("test_fraction", real_number, test_fraction)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction!r} not allowed: must be in (0, 1)")
    seed = _checked("seed", lambda v: integer_number(v, 0, 2**32 - 1), seed)
    pixels, labels = _digits_arrays()
    if split == "all":
        keep = np.arange(labels.size)
    else:
        is_test = np.zeros(labels.size, dtype=bool)
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            order = np.random.default_rng(seed + int(c)).permutation(members.size)
            is_test[members[order[: int(round(test_fraction * members.size))]]] = True
        keep = np.flatnonzero(is_test if split == "test" else ~is_test)
    images = _to_unit_range(pixels[keep][:, None, :, :], 16.0)
    return ImageSet(images, torch.from_numpy(labels[keep].copy()), "digits", split, 10)


# ------------------------------------------------------------------------------------------------
# MNIST (IDX files)
# ------------------------------------------------------------------------------------------------


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip-compressed or raw) into a ``uint8`` array.

    Header: bytes 0-1 zero, byte 2 the type (``0x08``, unsigned byte, is the only type MNIST uses
    and the only one accepted), byte 3 the number of dimensions ``d``, then ``d`` big-endian
    ``uint32`` sizes; the data follow in C order and must fill the rest of the file exactly.
    A file that is missing, truncated, padded or not IDX raises ``FileNotFoundError`` /
    ``ValueError`` naming it.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"IDX file {p} does not exist") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(
                f"{p} is a damaged gzip file ({err}); delete it and download it again"
            ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{p} is not an IDX file (it does not start with two zero bytes)")
    if raw[2] != 0x08:
        raise ValueError(f"{p}: IDX data type 0x{raw[2]:02x} is not supported (only 0x08, unsigned byte)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(f"{p}: IDX header with {ndim} dimensions is truncated")
    shape = struct.unpack(">" + "I" * ndim, raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != expected:
        raise ValueError(
            f"{p}: IDX header says shape {shape} ({expected} bytes of data) but the file holds "
            f"{len(raw) - header}; the file is truncated or corrupt -- delete it and download it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _mnist_file(folder: Path, stem: str, download: bool) -> Path:
    for candidate in (folder / (stem + ".gz"), folder / stem):
        if candidate.is_file():
            return candidate
    if not download:
        raise FileNotFoundError(
            f"MNIST file {folder / (stem + '.gz')} (or the uncompressed {folder / stem}) is missing; call "
            f"mnist(..., download=True) to fetch it, or put the official file there yourself"
        )
    name = stem + ".gz"
    errors = []
    for mirror in MNIST_MIRRORS:
        try:
            return fetch_verified(mirror + name, folder / name, MNIST_MD5[name])
        except (OSError, ValueError) as err:
            errors.append(str(err))
    raise OSError(f"could not download {name} from any mirror:\n  " + "\n  ".join(errors))


def mnist(root: str | os.PathLike[str] | None = None, split: str = "train", download: bool = False) -> ImageSet:
    """MNIST ``split`` (``"train"``: 60,000 images, ``"test"``: 10,000) as ``(N, 1, 28, 28)`` in ``[-1, 1]``.

    Files are looked up in ``root/mnist/`` (``root`` defaults to :func:`default_root`) under their
    official names (``train-images-idx3-ubyte.gz`` ...; the uncompressed name works too). With
    ``download=True`` missing files are fetched once (:data:`MNIST_MIRRORS`) and checked against
    :data:`MNIST_MD5`. Pixel values ``0..255`` map to ``2 v / 255 - 1``.
    """
    split = _checked("split", _SPLIT, split)
    download = _checked("download", boolean, download)
    folder = _root(root) / "mnist"
    image_stem, label_stem = _MNIST_SPLIT_FILES[split]
    image_path = _mnist_file(folder, image_stem, download)
    label_path = _mnist_file(folder, label_stem, download)
    images = read_idx(image_path)
    labels = read_idx(label_path)
    if images.ndim != 3:
        raise ValueError(f"{image_path}: expected an IDX image file (magic 0x00000803, 3 dimensions); got shape {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"{label_path}: expected an IDX label file (magic 0x00000801, 1 dimension); got shape {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{image_path} holds {images.shape[0]} images but {label_path} holds {labels.shape[0]} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{label_path}: label {int(labels.max())} is not a digit 0..9; the file is corrupt")
    return ImageSet(
        _to_unit_range(images[:, None, :, :], 255.0), torch.from_numpy(labels.astype(np.int64)), "mnist", split, 10
    )


# ------------------------------------------------------------------------------------------------
# CIFAR-10 (python pickle batches)
# ------------------------------------------------------------------------------------------------

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Builds only NumPy arrays, bytes and plain containers (a pickle can run any code otherwise)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.split(".", 2)[2]
        return super().find_class(module, name)


def read_cifar_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch: ``(images uint8 (n, 3, 32, 32), labels int64 (n,))``.

    The file is a pickle (protocol 2, written by Python 2) of a dict with ``b"data"``, a
    ``(n, 3072)`` ``uint8`` array whose row holds the red, green and blue 32x32 planes in
    row-major order, and ``b"labels"``, ``n`` ints in ``0..9``. Missing, truncated or malformed
    files raise ``FileNotFoundError`` / ``ValueError`` naming the path.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"CIFAR-10 batch {p} does not exist") from None
    try:
        entry = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # pickle raises many types on damaged input
        raise ValueError(
            f"{p} is not a readable CIFAR-10 python batch ({type(err).__name__}: {err}); the file is "
            f"truncated or corrupt -- delete the folder {p.parent} and download it again"
        ) from None
    if not isinstance(entry, dict) or b"data" not in entry or b"labels" not in entry:
        keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise ValueError(f"{p}: expected a dict with keys b'data' and b'labels'; got {keys}")
    data, labels = entry[b"data"], np.asarray(entry[b"labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{p}: b'data' must be a uint8 array of shape (n, 3072); got {desc}")
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{p}: b'labels' must hold {data.shape[0]} integers; got {labels.dtype} of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{p}: labels must be in 0..9; got range [{labels.min()}, {labels.max()}]")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _download_cifar10(root: Path) -> None:
    archive = root / _CIFAR_ARCHIVE
    if not archive.is_file() or md5_of(archive) != CIFAR10_ARCHIVE_MD5:
        fetch_verified(CIFAR10_URL, archive, CIFAR10_ARCHIVE_MD5, timeout=120.0)
    staging = temp_dir(root, _CIFAR_FOLDER)
    try:
        wanted = {f"{_CIFAR_FOLDER}/{name}" for name in CIFAR10_BATCH_MD5}
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name in wanted and m.isfile()]
            if len(members) != len(wanted):
                raise ValueError(f"{archive} does not hold all of {sorted(wanted)}; delete it and download again")
            for member in members:
                src = tar.extractfile(member)
                if src is None:
                    raise ValueError(f"{archive}: {member.name} cannot be read; delete the archive and download again")
                (staging / _CIFAR_FOLDER).mkdir(exist_ok=True)
                with src, open(staging / member.name, "wb") as out:
                    shutil.copyfileobj(src, out)
        for name, md5 in CIFAR10_BATCH_MD5.items():
            got = md5_of(staging / _CIFAR_FOLDER / name)
            if got != md5:
                raise ValueError(f"{archive}: {name} has MD5 {got}, expected {md5}; delete the archive and download again")
        final = root / _CIFAR_FOLDER
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging / _CIFAR_FOLDER, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def cifar10(root: str | os.PathLike[str] | None = None, split: str = "train", download: bool = False) -> ImageSet:
    """CIFAR-10 ``split`` (``"train"``: 50,000 images, ``"test"``: 10,000) as ``(N, 3, 32, 32)`` in ``[-1, 1]``.

    Batches are read from ``root/cifar-10-batches-py/`` (``root`` defaults to :func:`default_root`),
    the folder the official archive unpacks to. With ``download=True`` and a batch missing, the
    archive is fetched once (:data:`CIFAR10_URL`), checked against :data:`CIFAR10_ARCHIVE_MD5`,
    kept in ``root``, and its six batches are extracted into a temporary folder, checked against
    :data:`CIFAR10_BATCH_MD5` and renamed into place. Labels: 0 airplane, 1 automobile, 2 bird,
    3 cat, 4 deer, 5 dog, 6 frog, 7 horse, 8 ship, 9 truck.
    """
    split = _checked("split", _SPLIT, split)
    download = _checked("download", boolean, download)
    base = _root(root)
    folder = base / _CIFAR_FOLDER
    names = _CIFAR_SPLIT_FILES[split]
    missing = [folder / n for n in names if not (folder / n).is_file()]
    if missing:
        if not download:
            raise FileNotFoundError(
                f"CIFAR-10 batch {missing[0]} is missing; call cifar10(..., download=True) to fetch the "
                f"official archive, or unpack {_CIFAR_ARCHIVE} (from {CIFAR10_URL}) into {base}"
            )
        base.mkdir(parents=True, exist_ok=True)
        _download_cifar10(base)
    parts = [read_cifar_batch(folder / n) for n in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return ImageSet(_to_unit_range(images, 255.0), torch.from_numpy(labels), "cifar10", split, 10)
