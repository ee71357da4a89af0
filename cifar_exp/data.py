"""Split CIFAR-100 the report's way, subset it, fingerprint it: the arrays a run trains, validates and tests on.
Where the images come from (keras.datasets or a local copy in one of three formats) is :mod:`cifar_exp.sources`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from cifar_exp.data_checks import check_every_class, check_superclasses, warn_of_classes_missing_from_test
from cifar_exp.errors import DataError
from cifar_exp.sources import described, load_raw


@dataclass
class Dataset:
    """The arrays a run uses, with what is needed to label and map its classes."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    coarse_names: list[str]
    fine_to_coarse: np.ndarray  # (100,) coarse class of every fine class
    label_mode: str
    fingerprint: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _stratified_subset(x: np.ndarray, y: np.ndarray, size: int | None, seed: int, what: str):
    if size is None or size == len(y):
        return x, y
    if size > len(y):
        split = "training" if what == "train_size" else "test"
        raise DataError(
            f"data.{what}={size} is more images than the {len(y)} of the {split} split; give at most {len(y)}, "
            "or null for all of them (a larger number would silently mean all, under another config hash)."
        )
    classes = len(np.unique(y))
    if size < classes:
        raise DataError(
            f"data.{what}={size} is fewer images than the {classes} classes: a class-stratified subset keeps at "
            f"least one image of each; choose at least {classes}, or null for all {len(y)} images."
        )
    try:
        x_sub, _, y_sub, _ = train_test_split(x, y, train_size=size, stratify=y, random_state=seed)
    except ValueError as error:
        raise DataError(
            f"data.{what}={size} cannot keep a class-stratified subset ({error}); "
            "choose a larger size or null for all images."
        ) from error
    return x_sub, y_sub


def fingerprint(*arrays: np.ndarray) -> str:
    """sha256 over the exact arrays a run trains, validates and tests on (shapes and dtypes included)."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def load_dataset(
    source: str,
    path: str | None,
    label_mode: str = "fine",
    val_split: float = 0.17,
    split_seed: int = 42,
    train_size: int | None = None,
    test_size: int | None = None,
) -> Dataset:
    """Load, subset and split CIFAR-100 the way the report did.

    The validation set is ``train_test_split(test_size=val_split, random_state=split_seed)`` of the
    (possibly subset) training pool, as in the report; ``val_split=0`` validates on the test set.
    """
    train, test, fine_names, coarse_names = load_raw(source, path)
    where = described(source, path)
    check_every_class(train, label_mode, fine_names if label_mode == "fine" else coarse_names, where)
    mapping = check_superclasses(train, test, where)
    warn_of_classes_missing_from_test(test, label_mode, where)
    y_train = train.y_fine if label_mode == "fine" else train.y_coarse
    y_test = test.y_fine if label_mode == "fine" else test.y_coarse
    x_train, y_train = _stratified_subset(train.x, y_train, train_size, split_seed, "train_size")
    x_test, y_test = _stratified_subset(test.x, y_test, test_size, split_seed, "test_size")
    if val_split > 0:
        try:
            x_train, x_val, y_train, y_val = train_test_split(
                x_train, y_train, test_size=val_split, random_state=split_seed
            )
        except ValueError as error:
            raise DataError(
                f"data.val_split={val_split} cannot split {len(y_train)} images ({error}); use more "
                "images (data.train_size) or another data.val_split."
            ) from error
    else:
        x_val, y_val = x_test, y_test
    if len(y_train) < 2 or len(y_val) == 0:
        raise DataError(
            f"data.val_split={val_split} of {len(y_train) + (len(y_val) if val_split > 0 else 0)} images "
            f"leaves {len(y_train)} training and {len(y_val)} validation images; use more images "
            "(data.train_size) or another data.val_split."
        )
    return Dataset(
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        class_names=fine_names if label_mode == "fine" else coarse_names,
        coarse_names=coarse_names,
        fine_to_coarse=mapping,
        label_mode=label_mode,
        fingerprint=fingerprint(x_train, y_train, x_val, y_val, x_test, y_test),
    )
