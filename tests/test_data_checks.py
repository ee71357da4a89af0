"""The checks every loaded split passes, on arrays built here: exact conversions only, every refusal a DataError
that names the fault and its fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cifar_exp.data_checks import (
    RawSplit,
    check_every_class,
    check_meta_mapping,
    check_split,
    check_superclasses,
    exact_labels,
    exact_uint8,
)
from cifar_exp.errors import DataError


def split(n: int = 200, dtype=np.uint8) -> RawSplit:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, 32, 32, 3)).astype(dtype)
    y_fine = np.arange(n) % 100
    return RawSplit(x, y_fine, y_fine % 20)


def test_whole_valued_floats_become_the_same_uint8_images():
    x = split(dtype=np.float32).x
    converted = exact_uint8(x, "images")
    assert converted.dtype == np.uint8 and np.array_equal(converted, x.astype(np.uint8))


@pytest.mark.parametrize(
    "pixels,message",
    [
        (np.full((1, 32, 32, 3), np.nan, np.float32), "3072 NaN or infinite values"),
        (np.full((1, 32, 32, 3), 300.0), "outside 0..255"),
        (np.full((1, 32, 32, 3), -1, np.int16), "outside 0..255"),
        (np.full((1, 32, 32, 3), 0.5), "look scaled to [0, 1]: multiply by 255"),
        (np.full((1, 32, 32, 3), "a"), "not numbers"),
    ],
)
def test_bad_pixels_are_refused_not_rounded_or_clipped(pixels, message):
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        exact_uint8(pixels, "images")


def test_fractional_labels_are_refused_whole_floats_kept():
    assert exact_labels(np.array([1.0, 2.0]), "y").tolist() == [1, 2]
    with pytest.raises(DataError, match="not whole class numbers"):
        exact_labels(np.array([1.5]), "y")


def test_a_split_is_checked_for_shape_length_and_label_range():
    good = split()
    assert check_split("train", good, "here").x is good.x
    with pytest.raises(DataError, match=r"here: train images have shape \(200, 32, 32\)"):
        check_split("train", RawSplit(good.x[..., 0], good.y_fine, good.y_coarse), "here")
    with pytest.raises(DataError, match="y_coarse holds labels in \\[0, 20\\], expected 0..19"):
        check_split("train", RawSplit(good.x, good.y_fine, good.y_coarse + (good.y_coarse == 19)), "here")


def test_a_fine_class_in_two_superclasses_is_named():
    train, test = split(), split()
    test.y_coarse = test.y_coarse.copy()
    test.y_coarse[7] = 3  # fine class 7 is superclass 7 in train
    with pytest.raises(DataError, match=r"fine class 7 is labelled with superclasses \[3, 7\]"):
        check_superclasses(train, test, "here")
    assert check_superclasses(split(), split(), "here").tolist() == [c % 20 for c in range(100)]


def test_a_class_without_training_images_is_named():
    train = split()
    train.y_fine = np.where(train.y_fine == 42, 41, train.y_fine)
    names = [f"name{i}" for i in range(100)]
    with pytest.raises(DataError, match=r"no image of 1 fine class\(es\): 42 \(name42\)"):
        check_every_class(train, "fine", names, "here")
    check_every_class(train, "coarse", names[:20], "here")  # superclass 2 still has images


def test_a_meta_json_that_contradicts_the_labels_is_refused():
    train, test = split(), split()
    mapping = np.arange(100) % 20
    check_meta_mapping(mapping, train, test, Path("meta.json"))
    mapping[5] = 0
    with pytest.raises(DataError, match="maps fine class 5 to superclass 0, but its images are labelled superclass 5"):
        check_meta_mapping(mapping, train, test, Path("meta.json"))


@pytest.mark.parametrize(
    "mapping", [np.arange(99) % 20, np.asarray("abc"), np.arange(100) / 5, np.zeros((100, 1), int)]
)
def test_a_meta_json_fine_to_coarse_of_the_wrong_shape_or_kind_is_refused(mapping):
    """99 entries were ignored without a word; a string or floats said nothing of the file."""
    with pytest.raises(DataError, match=r"meta.json: fine_to_coarse must list the superclass of each of the 100"):
        check_meta_mapping(mapping, split(), split(), Path("meta.json"))
