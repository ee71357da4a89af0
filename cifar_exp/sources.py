"""Where CIFAR-100 comes from: ``keras.datasets.cifar100`` (downloads), or a local copy that is a folder holding
``train.npz``/``test.npz`` (keys ``x``, ``y_fine``, ``y_coarse``, optional ``meta.json``), the official
``cifar-100-python`` pickles (the folder itself or its parent), or ``cifar-100-python.tar.gz`` (the file or a
folder holding it). Each reader returns both official splits as uint8 images (N, 32, 32, 3) with 1-D integer
labels, checked (:mod:`cifar_exp.data_checks`); a damaged file is named, whatever it raises.
"""

from __future__ import annotations

import json
import os
import pickle
import tarfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from cifar_exp.data_checks import NUM_COARSE, NUM_FINE, RawSplit, check_meta_mapping, check_names, check_split
from cifar_exp.errors import DataError

TARBALL = "cifar-100-python.tar.gz"


def described(source: str, path: str | None) -> str:
    """How messages name a dataset: the local copy's path, or keras.datasets."""
    return "keras.datasets.cifar100" if source == "keras" else str(path)


def _corrupt(where: object, error: BaseException) -> DataError:
    return DataError(f"{where} is truncated or corrupt ({type(error).__name__}: {error}); re-copy the dataset.")


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """A failure while reading ``path`` (a damaged file can raise almost anything: zipfile, pickle, zlib,
    MemoryError, IndexError) becomes a DataError naming that file."""
    try:
        yield
    except (DataError, FileNotFoundError):
        raise
    except ValueError as error:
        if "allow_pickle" not in str(error):
            raise _corrupt(path, error) from error
        if not _numpy_or_pickle(path):
            raise DataError(
                f"{path} is not a NumPy file at all (neither .npz, .npy nor a pickle: damaged, empty or another "
                "format); re-copy the dataset."
            ) from error
        raise DataError(
            f"{path} holds Python objects (an object or pickled array), not numbers: they are not loaded, since "
            "unpickling can run code; save the images as uint8 and the labels as integers."
        ) from error
    except Exception as error:
        raise _corrupt(path, error) from error


def _numpy_or_pickle(path: Path) -> bool:
    """Whether ``path`` starts as an .npz (a zip), an .npy or a pickle (protocol 2 and later) does: numpy takes any
    other bytes for a pickle too, and a damaged or foreign file is then said as corrupt, not as Python objects."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError:
        return False
    return head.startswith((b"PK\x03\x04", b"\x93NUMPY", b"\x80"))


def _from_pickle_dict(entry: dict) -> RawSplit:
    # as stored: a cast to uint8 here would wrap 300 to 44 and truncate floats in [0, 1] to black images, silently;
    # check_split converts exact whole values 0..255 and refuses the rest, as for the other formats
    x = np.asarray(entry[b"data"]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return RawSplit(x, np.asarray(entry[b"fine_labels"]), np.asarray(entry[b"coarse_labels"]))


def _names_from_pickle_meta(meta: dict) -> tuple[list[str], list[str]]:
    return ([n.decode() for n in meta[b"fine_label_names"]], [n.decode() for n in meta[b"coarse_label_names"]])


def _load_pickles(folder: Path) -> tuple[RawSplit, RawSplit, tuple[list[str], list[str]] | None]:
    def read(name: str) -> dict:
        with _reading(folder / name), open(folder / name, "rb") as f:
            return pickle.load(f, encoding="bytes")

    meta = _names_from_pickle_meta(read("meta")) if (folder / "meta").exists() else None
    with _reading(folder / "train"):
        train = _from_pickle_dict(read("train"))
    with _reading(folder / "test"):
        test = _from_pickle_dict(read("test"))
    return train, test, meta


def _load_tarball(path: Path) -> tuple[RawSplit, RawSplit, tuple[list[str], list[str]] | None]:
    with _reading(path), tarfile.open(path, "r:gz") as tar:

        def read(name: str) -> dict | None:
            try:
                member = tar.extractfile(f"cifar-100-python/{name}")
            except KeyError:
                return None
            return pickle.load(member, encoding="bytes") if member else None

        train, test, meta = read("train"), read("test"), read("meta")
    if train is None or test is None:
        raise DataError(f"{path} does not hold cifar-100-python/train and cifar-100-python/test.")
    return _from_pickle_dict(train), _from_pickle_dict(test), (_names_from_pickle_meta(meta) if meta else None)


def _load_npz(folder: Path) -> tuple[RawSplit, RawSplit, tuple[list[str], list[str]] | None]:
    def read(name: str) -> RawSplit:
        with _reading(folder / name), np.load(folder / name, allow_pickle=False) as z:
            missing = {"x", "y_fine", "y_coarse"} - set(z.files)
            if missing:
                raise DataError(f"{folder / name} lacks the keys {sorted(missing)} (expected x, y_fine, y_coarse).")
            return RawSplit(
                z["x"], _labels(z["y_fine"], folder / name, "y_fine"), _labels(z["y_coarse"], folder / name, "y_coarse")
            )

    names = None
    train, test = read("train.npz"), read("test.npz")
    if (folder / "meta.json").exists():
        with _reading(folder / "meta.json"):
            meta = json.loads((folder / "meta.json").read_text())
            names = (list(meta["fine_label_names"]), list(meta["coarse_label_names"]))
        if "fine_to_coarse" in meta:
            check_meta_mapping(np.asarray(meta["fine_to_coarse"]), train, test, folder / "meta.json")
    return train, test, names


def _labels(y: np.ndarray, path: Path, key: str) -> np.ndarray:
    """Class numbers as a 1-D array; (N, 1) is accepted, one-hot or probability rows are refused by name."""
    if y.ndim == 2 and y.shape[1] > 1:
        raise DataError(
            f"{path}: {key} has shape {y.shape}, one row of {y.shape[1]} values per image (one-hot?); give one "
            f"class number per image, shape (N,) (e.g. {key}.argmax(axis=1))."
        )
    return y.reshape(-1)


def _load_local(path: Path):
    if path.is_file():
        if path.name.endswith(".tar.gz"):
            return _load_tarball(path)
        raise DataError(f"data.path={path} is a file but not {TARBALL}.")
    if (path / "train.npz").exists():
        return _load_npz(path)
    for folder in (path, path / "cifar-100-python"):
        if (folder / "train").exists() and (folder / "test").exists():
            return _load_pickles(folder)
    if (path / TARBALL).exists():
        return _load_tarball(path / TARBALL)
    raise DataError(
        f"data.path={path} holds no CIFAR-100 copy: expected train.npz and test.npz, the cifar-100-python "
        f"pickles (train, test, meta), or {TARBALL}."
    )


def _load_keras():
    import keras  # imported here: only this source needs it

    try:
        (x_train, yf_train), (x_test, yf_test) = keras.datasets.cifar100.load_data(label_mode="fine")
        (_, yc_train), (_, yc_test) = keras.datasets.cifar100.load_data(label_mode="coarse")
    except Exception as error:  # urllib, ssl, socket, http: all mean "could not download"
        raise DataError(
            f"keras.datasets.cifar100 could not be loaded ({type(error).__name__}: {error}). Without network "
            "access use a local copy instead: data.source=local data.path=<folder with train.npz/test.npz, "
            f"the cifar-100-python pickles, or {TARBALL}>, e.g. data.path=../shared/data/cifar100."
        ) from error
    train = RawSplit(x_train, yf_train.reshape(-1), yc_train.reshape(-1))
    test = RawSplit(x_test, yf_test.reshape(-1), yc_test.reshape(-1))
    meta_file = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets/cifar-100-python/meta"
    names = None
    if meta_file.exists():
        names = _names_from_pickle_meta(pickle.loads(meta_file.read_bytes(), encoding="bytes"))
    return train, test, names


def load_raw(source: str, path: str | None) -> tuple[RawSplit, RawSplit, list[str], list[str]]:
    """Load both official splits and the label names from ``source`` ('keras' or 'local')."""
    where = described(source, path)
    try:
        train, test, names = _load_keras() if source == "keras" else _load_local(Path(str(path)))
    except DataError:
        raise
    except FileNotFoundError as error:
        raise DataError(f"{where}: missing file {error.filename}.") from error
    except Exception as error:  # a damaged pickle can raise almost anything (MemoryError, IndexError, ...)
        raise _corrupt(where, error) from error
    train, test = check_split("train", train, where), check_split("test", test, where)
    check_names(names, where)
    fine_names, coarse_names = names or (
        [f"class_{i:02d}" for i in range(NUM_FINE)],
        [f"superclass_{i:02d}" for i in range(NUM_COARSE)],
    )
    return train, test, fine_names, coarse_names
