"""Splitting, subsetting and fingerprinting the arrays a run uses (cifar_exp.data)."""

from __future__ import annotations

import numpy as np
import pytest

from cifar_exp.data import DataError, load_dataset
from cifar_exp.data_checks import NUM_COARSE
from cifar_exp.errors import CifarExpError


def test_split_follows_the_report_train_test_split(npz_dir, tiny_splits):
    from sklearn.model_selection import train_test_split

    data = load_dataset("local", str(npz_dir), val_split=0.17, split_seed=42)
    x_train, x_val, _, _ = train_test_split(
        tiny_splits[0]["x"], tiny_splits[0]["y_fine"], test_size=0.17, random_state=42
    )
    np.testing.assert_array_equal(data.x_val, x_val)
    np.testing.assert_array_equal(data.x_train, x_train)
    assert len(data.y_val) == 68 and data.x_val is not data.x_test


def test_val_split_zero_validates_on_the_test_set(npz_dir):
    data = load_dataset("local", str(npz_dir), val_split=0)
    assert data.x_val is data.x_test and len(data.y_train) == 400
    np.testing.assert_array_equal(data.x_val, data.x_test)


def test_subsets_are_class_stratified(npz_dir):
    data = load_dataset("local", str(npz_dir), val_split=0, train_size=200, test_size=100)
    assert np.bincount(data.y_train, minlength=100).tolist() == [2] * 100
    assert np.bincount(data.y_test, minlength=100).tolist() == [1] * 100


def test_coarse_labels_and_fine_to_coarse_mapping(npz_dir, tiny_splits):
    data = load_dataset("local", str(npz_dir), label_mode="coarse", val_split=0)
    assert data.num_classes == NUM_COARSE and data.y_train.max() < 20
    np.testing.assert_array_equal(data.fine_to_coarse, np.arange(100) % 20)


def test_fingerprint_depends_on_the_data_actually_used(npz_dir):
    a = load_dataset("local", str(npz_dir)).fingerprint
    assert a == load_dataset("local", str(npz_dir)).fingerprint
    assert a != load_dataset("local", str(npz_dir), split_seed=1).fingerprint
    assert a != load_dataset("local", str(npz_dir), train_size=300).fingerprint


@pytest.mark.parametrize(
    "sizes,said",
    [
        ({"train_size": 50}, "data.train_size=50 is fewer images than the 100 classes"),
        ({"val_split": 0, "test_size": 99}, "data.test_size=99 is fewer images than the 100 classes.*at least 100"),
        ({"train_size": 401}, "data.train_size=401 is more images than the 400 of the training split"),
        ({"val_split": 0, "test_size": 5000}, "data.test_size=5000 is more images than the 200 of the test split"),
    ],
)
def test_a_subset_too_small_or_larger_than_its_split_names_the_setting(npz_dir, sizes, said):
    """Too few for one image per class, or more than the split holds (which would silently mean all of them)."""
    with pytest.raises(DataError, match=said):
        load_dataset("local", str(npz_dir), **sizes)


def test_the_subset_bounds_themselves_are_accepted(npz_dir):
    assert len(load_dataset("local", str(npz_dir), val_split=0, test_size=100).y_test) == 100
    assert len(load_dataset("local", str(npz_dir), val_split=0, train_size=400).y_train) == 400


def test_coarse_subsets_need_only_one_image_per_superclass(npz_dir):
    assert len(load_dataset("local", str(npz_dir), label_mode="coarse", val_split=0, test_size=20).y_test) == 20


def test_data_errors_are_user_errors():
    assert issubclass(DataError, CifarExpError)


def test_a_test_split_without_some_classes_loads_with_one_warning(tmp_path, tiny_splits, npz_dir, caplog):
    from conftest import write_npz

    test = {key: value[:3] for key, value in tiny_splits[1].items()}
    folder = write_npz(tmp_path / "three", tiny_splits[0], test)
    assert len(load_dataset("local", str(folder)).y_test) == 3
    load_dataset("local", str(folder), val_split=0)  # loaded again in the same process (a sweep's check, its job)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "the test split (3 images) has no image of 97 of the 100 fine classes" in warning, warning
    caplog.clear()
    load_dataset("local", str(npz_dir))  # every class in its test split: nothing said
    assert [r for r in caplog.records if r.levelname == "WARNING"] == []
