"""Every accepted copy of CIFAR-100 reads the same, and a damaged one is named (cifar_exp.sources)."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
from conftest import make_split, write_npz, write_pickles, write_tarball

from cifar_exp.errors import DataError
from cifar_exp.sources import load_raw


@pytest.fixture(scope="module")
def copies(tmp_path_factory, tiny_splits):
    root = tmp_path_factory.mktemp("formats")
    return {
        "npz": write_npz(root / "npz", *tiny_splits),
        "pickles": write_pickles(root / "pickles", *tiny_splits),
        "pickles_inner": write_pickles(root / "pickles2", *tiny_splits) / "cifar-100-python",
        "tarball": write_tarball(root / "tar", *tiny_splits),
        "tarball_dir": write_tarball(root / "tardir", *tiny_splits).parent,
    }


@pytest.mark.parametrize("fmt", ["npz", "pickles", "pickles_inner", "tarball", "tarball_dir"])
def test_every_format_loads_the_same_images_and_labels(copies, tiny_splits, fmt):
    train, test, fine, coarse = load_raw("local", str(copies[fmt]))
    np.testing.assert_array_equal(train.x, tiny_splits[0]["x"])
    np.testing.assert_array_equal(train.y_fine, tiny_splits[0]["y_fine"])
    np.testing.assert_array_equal(test.y_coarse, tiny_splits[1]["y_coarse"])
    assert train.x.dtype == np.uint8 and train.x.shape == (400, 32, 32, 3)
    assert fine[3] == "fine3" and coarse[19] == "coarse19"


def _broken(tmp_path, kind):
    train, test = make_split(2, 0), make_split(1, 1)
    if kind == "shape":
        train["x"] = train["x"][:, :16]
    elif kind == "labels":
        train["y_fine"] = train["y_fine"] + 100
    elif kind == "length":
        train["y_coarse"] = train["y_coarse"][:-1]
    folder = write_npz(tmp_path / kind, train, test)
    if kind == "truncated":
        raw = (folder / "train.npz").read_bytes()
        (folder / "train.npz").write_bytes(raw[: len(raw) // 2])
    if kind == "missing_key":
        np.savez(folder / "train.npz", x=train["x"], y_fine=train["y_fine"])
    if kind == "object_array":
        np.savez(folder / "train.npz", x=train["x"].astype(object), y_fine=train["y_fine"], y_coarse=train["y_coarse"])
    if kind == "pickled":
        (folder / "train.npz").write_bytes(pickle.dumps(train))
    if kind in ("text", "empty"):
        (folder / "train.npz").write_text("images went elsewhere\n" if kind == "text" else "")
    if kind == "one_hot":
        one_hot = np.eye(100, dtype=np.uint8)[train["y_fine"]]
        np.savez(folder / "train.npz", x=train["x"], y_fine=one_hot, y_coarse=train["y_coarse"])
    return folder


@pytest.mark.parametrize(
    "kind,message",
    [
        ("shape", "expected (N, 32, 32, 3)"),
        ("labels", "expected 0..99"),
        ("length", "to match the images"),
        ("truncated", "train.npz is truncated or corrupt"),
        ("missing_key", "lacks the keys ['y_coarse']"),
        ("object_array", "train.npz holds Python objects (an object or pickled array), not numbers"),
        ("pickled", "train.npz holds Python objects (an object or pickled array), not numbers"),
        ("text", "train.npz is not a NumPy file at all (neither .npz, .npy nor a pickle"),
        ("empty", "train.npz is truncated or corrupt (EOFError"),
        ("one_hot", "y_fine has shape (200, 100), one row of 100 values per image (one-hot?)"),
    ],
)
def test_malformed_npz_is_a_clear_data_error(tmp_path, kind, message):
    with pytest.raises(DataError, match=re.escape(message)):
        load_raw("local", str(_broken(tmp_path, kind)))


def test_corrupt_tarball_and_pickles(tmp_path):
    bad_tar = tmp_path / "cifar-100-python.tar.gz"
    bad_tar.write_bytes(b"not a tarball at all")
    with pytest.raises(DataError, match="cifar-100-python.tar.gz is truncated or corrupt"):
        load_raw("local", str(bad_tar))
    folder = write_pickles(tmp_path / "p", make_split(1, 0), make_split(1, 1))
    (folder / "cifar-100-python" / "train").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match="cifar-100-python/train is truncated or corrupt"):
        load_raw("local", str(folder))


def test_folder_without_a_dataset(tmp_path):
    with pytest.raises(DataError, match="holds no CIFAR-100 copy"):
        load_raw("local", str(tmp_path))


@pytest.mark.parametrize(
    "dtype,scale,offset,message",
    [
        (np.float32, 1 / 255, 0, "they look scaled to [0, 1]"),
        (np.int16, 1, 300, "outside 0..255"),
    ],
)
def test_pickled_images_are_not_cast_silently(tmp_path, dtype, scale, offset, message):
    """The pickles' images were cast to uint8 as read: floats in [0, 1] became black images and 300 wrapped to 44,
    and training went on; they are checked as npz images are."""
    import pickle

    folder = write_pickles(tmp_path / "p", make_split(1, 0), make_split(1, 1))
    test = folder / "cifar-100-python" / "test"
    entry = pickle.loads(test.read_bytes())
    entry[b"data"] = entry[b"data"].astype(dtype) * scale + offset
    test.write_bytes(pickle.dumps(entry))
    with pytest.raises(DataError, match=re.escape(message)):
        load_raw("local", str(folder))
    with pytest.raises(DataError, match=re.escape(message)):
        load_raw("local", str(write_tarball(tmp_path / "t", make_split(1, 0), _split_of(entry))))


def _split_of(entry: dict) -> dict:
    x = entry[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return {"x": x, "y_fine": np.asarray(entry[b"fine_labels"]), "y_coarse": np.asarray(entry[b"coarse_labels"])}


def test_pickled_whole_values_of_another_type_load_exactly(tmp_path):
    import pickle

    split = make_split(1, 1)
    folder = write_pickles(tmp_path / "p", make_split(1, 0), split)
    test = folder / "cifar-100-python" / "test"
    entry = pickle.loads(test.read_bytes())
    entry[b"data"] = entry[b"data"].astype(np.int64)
    test.write_bytes(pickle.dumps(entry))
    _, loaded, _, _ = load_raw("local", str(folder))
    assert loaded.x.dtype == np.uint8 and np.array_equal(loaded.x, split["x"])
