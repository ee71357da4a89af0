"""What a loaded CIFAR-100 split must be before anything trains on it: uint8 RGB images (N, 32, 32, 3), whole
labels in range, every fine class in one superclass, names and ``meta.json`` agreeing with the labels. Each
failure is a :class:`DataError` that says what is wrong and how to fix the copy; values are converted only where
the conversion is exact (whole numbers stored as floats), never rounded or clipped."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from cifar_exp.errors import DataError

NUM_FINE, NUM_COARSE = 100, 20

log = logging.getLogger(__name__)


@dataclass
class RawSplit:
    """One official split (train or test), as loaded."""

    x: np.ndarray
    y_fine: np.ndarray
    y_coarse: np.ndarray


def exact_uint8(x: np.ndarray, what: str) -> np.ndarray:
    """Images as uint8, converted only where every value is an exact whole number in 0..255."""
    if x.dtype == np.uint8:
        return x
    fix = "store the images as uint8 RGB values 0-255"
    if x.dtype.kind not in "uif":
        raise DataError(f"{what} are {x.dtype}, not numbers; {fix}.")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DataError(f"{what} hold {int((~np.isfinite(x)).sum())} NaN or infinite values; {fix}.")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise DataError(f"{what} ({x.dtype}) hold values in [{x.min()}, {x.max()}], outside 0..255; {fix}.")
    if x.dtype.kind == "f" and x.size and not np.array_equal(x, np.round(x)):
        scaled = " (they look scaled to [0, 1]: multiply by 255 and round)" if x.max() <= 1 else ""
        raise DataError(f"{what} ({x.dtype}) hold fractional values{scaled}; {fix}.")
    log.warning("%s are %s with whole values in 0..255: converted to uint8 exactly", what, x.dtype)
    return x.astype(np.uint8)


def exact_labels(y: np.ndarray, what: str) -> np.ndarray:
    """Labels as int64, refusing fractional or non-numeric ones (a cast would truncate them silently)."""
    if y.dtype.kind not in "uif" or (
        y.dtype.kind == "f" and (not np.isfinite(y).all() or not np.array_equal(y, np.round(y)))
    ):
        raise DataError(f"{what} ({y.dtype}) are not whole class numbers; store integer labels.")
    return y.astype(np.int64)


def check_split(name: str, split: RawSplit, where: str) -> RawSplit:
    """One split checked and converted exactly: (N, 32, 32, 3) uint8 images, fine and coarse labels in range."""
    x = split.x
    if x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise DataError(f"{where}: {name} images have shape {x.shape}, expected (N, 32, 32, 3) RGB HWC uint8.")
    n = len(x)
    if n == 0:
        raise DataError(f"{where}: the {name} split holds no images.")
    labels = {}
    for label, top in (("y_fine", NUM_FINE), ("y_coarse", NUM_COARSE)):
        y = getattr(split, label)
        if y.shape != (n,):
            raise DataError(f"{where}: {name} {label} has shape {y.shape}, expected ({n},) to match the images.")
        y = exact_labels(y, f"{where}: {name} {label}")
        if y.min() < 0 or y.max() >= top:
            raise DataError(f"{where}: {name} {label} holds labels in [{y.min()}, {y.max()}], expected 0..{top - 1}.")
        labels[label] = y
    return RawSplit(exact_uint8(x, f"{where}: {name} images"), labels["y_fine"], labels["y_coarse"])


def check_superclasses(train: RawSplit, test: RawSplit, where: str) -> np.ndarray:
    """The superclass of every fine class; each fine class must belong to exactly one."""
    y_fine = np.concatenate([train.y_fine, test.y_fine])
    y_coarse = np.concatenate([train.y_coarse, test.y_coarse])
    pairs = np.unique(np.stack([y_fine, y_coarse], axis=1), axis=0)
    fine, counts = np.unique(pairs[:, 0], return_counts=True)
    if (counts > 1).any():
        bad = int(fine[counts > 1][0])
        raise DataError(
            f"{where}: y_coarse does not follow y_fine: fine class {bad} is labelled with superclasses "
            f"{sorted(pairs[pairs[:, 0] == bad, 1].tolist())}; each fine class belongs to one superclass."
        )
    return fine_to_coarse(y_fine, y_coarse)


def check_names(names: Optional[tuple[list[str], list[str]]], where: str) -> None:
    """The class names a copy carries (if any): 100 distinct fine names and 20 coarse ones."""
    if names is None:
        return
    fine, coarse = names
    if len(fine) != NUM_FINE or len(coarse) != NUM_COARSE or len(set(fine)) != NUM_FINE:
        raise DataError(
            f"{where}: the class names list {len(fine)} fine ({len(set(fine))} distinct) and "
            f"{len(coarse)} coarse names; expected {NUM_FINE} distinct fine and {NUM_COARSE} coarse."
        )


def check_every_class(train: RawSplit, label_mode: str, names: list[str], where: str) -> None:
    """Every class of ``label_mode`` must have training images: a model cannot learn a class it never sees."""
    labels, count = (train.y_fine, NUM_FINE) if label_mode == "fine" else (train.y_coarse, NUM_COARSE)
    missing = np.flatnonzero(np.bincount(labels, minlength=count) == 0)
    if len(missing):
        shown = ", ".join(f"{i} ({names[i]})" for i in missing[:5])
        raise DataError(
            f"{where}: the training split has no image of {len(missing)} {label_mode} class(es): "
            f"{shown}{' ...' if len(missing) > 5 else ''}; a model cannot learn them. Use the full "
            "dataset or one with every class."
        )


def warn_of_classes_missing_from_test(test: RawSplit, label_mode: str, where: str) -> None:
    """A test split without some classes is a valid copy, but its accuracy and confusion matrix say nothing about
    them (a 3-image test split moves the accuracy in steps of 33 points): said as a warning, once per copy in a
    process (a sweep loads its data to check each job, then again for each job)."""
    labels, count = (test.y_fine, NUM_FINE) if label_mode == "fine" else (test.y_coarse, NUM_COARSE)
    missing = int(np.sum(np.bincount(labels, minlength=count) == 0))
    if missing:
        _warn_once(where, len(labels), missing, count, label_mode)


@functools.cache
def _warn_once(where: str, images: int, missing: int, count: int, label_mode: str) -> None:
    log.warning(
        "%s: the test split (%d images) has no image of %d of the %d %s classes: its test accuracy and confusion "
        "matrix say nothing about them",
        where,
        images,
        missing,
        count,
        label_mode,
    )


def check_meta_mapping(expected: np.ndarray, train: RawSplit, test: RawSplit, meta: Path) -> None:
    """meta.json's fine_to_coarse must be one superclass per fine class and describe the labels (checked where the
    labels are valid themselves)."""
    if expected.ndim != 1 or len(expected) != NUM_FINE or not np.issubdtype(expected.dtype, np.integer):
        raise DataError(
            f"{meta}: fine_to_coarse must list the superclass of each of the {NUM_FINE} fine classes as whole "
            f"numbers, not {np.array2string(expected.reshape(-1)[:5], separator=', ')}"
            f"{'...' if expected.size > 5 else ''} ({expected.size} {expected.dtype} values); fix or remove it."
        )
    y_fine = np.concatenate([train.y_fine.reshape(-1), test.y_fine.reshape(-1)]).astype(np.int64)
    y_coarse = np.concatenate([train.y_coarse.reshape(-1), test.y_coarse.reshape(-1)]).astype(np.int64)
    if len(y_fine) != len(y_coarse) or not len(y_fine) or y_fine.min() < 0 or y_fine.max() >= NUM_FINE:
        return  # malformed labels: that error comes with the label checks
    pairs = np.unique(np.stack([y_fine, y_coarse], axis=1), axis=0)
    if len(np.unique(pairs[:, 0])) != len(pairs):
        return  # the labels contradict themselves: that error comes with the label checks
    wrong = expected[pairs[:, 0]] != pairs[:, 1]
    if wrong.any():
        fine, coarse = (int(v) for v in pairs[wrong][0])
        raise DataError(
            f"{meta} maps fine class {fine} to superclass {int(expected[fine])}, but its images are "
            f"labelled superclass {coarse}; the meta.json does not describe these labels."
        )


def fine_to_coarse(y_fine: np.ndarray, y_coarse: np.ndarray) -> np.ndarray:
    """The coarse class of every fine class, read off the labels (-1 where a fine class is absent)."""
    mapping = np.full(NUM_FINE, -1, dtype=np.int64)
    mapping[y_fine] = y_coarse
    return mapping
