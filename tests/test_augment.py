"""shift_flip is faithful: whole-pixel shifts of up to 10% per axis with nearest fill, flips with p=1/2,
each independent per image and per call."""

from __future__ import annotations

import numpy as np

from cifar_exp.augment import max_shift_pixels, shift_flip


def _coordinate_images(n: int) -> np.ndarray:
    """Images whose pixels encode their own (row, col), so the transform can be read back."""
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    image = np.stack([rows * 4 + 2, cols * 4 + 2, np.zeros_like(rows)], axis=-1).astype(np.uint8)
    return np.repeat(image[None], n, axis=0)


def _read_transform(out: np.ndarray) -> tuple[int, int, bool]:
    """(dy, dx, flipped) of one augmented coordinate image, read at its centre pixel."""
    source_row = (int(out[16, 16, 0]) - 2) // 4
    source_col = (int(out[16, 16, 1]) - 2) // 4
    flipped = out[16, 17, 1] < out[16, 16, 1]
    dx = (31 - source_col) - 16 if flipped else source_col - 16
    return source_row - 16, dx, bool(flipped)


def test_max_shift_is_three_pixels_for_ten_percent():
    assert max_shift_pixels(32, 0.1) == 3
    assert max_shift_pixels(32, 0.0) == 0


def test_shifts_and_flips_are_uniform_and_independent():
    images = _coordinate_images(4000)
    out = shift_flip(images, np.random.default_rng(0))
    assert out.shape == images.shape and out.dtype == np.uint8
    transforms = np.array([_read_transform(o) for o in out])
    dy, dx, flipped = transforms[:, 0], transforms[:, 1], transforms[:, 2].astype(bool)
    assert set(dy) == set(range(-3, 4)) and set(dx) == set(range(-3, 4))
    expected = len(out) / 7
    for values in (dy, dx):
        counts = np.bincount(values + 3, minlength=7)
        chi2 = ((counts - expected) ** 2 / expected).sum()
        assert chi2 < 22.5  # chi-square, 6 dof, p = 0.001
    assert abs(flipped.mean() - 0.5) < 0.04
    assert abs(np.corrcoef(dy, dx)[0, 1]) < 0.06
    assert abs(np.corrcoef(dx, flipped)[0, 1]) < 0.06


def test_fill_is_nearest_pixel():
    images = _coordinate_images(2000)
    out = shift_flip(images, np.random.default_rng(1), flip=False)
    # After a shift, border pixels repeat the nearest edge of the original: no reflection, no zeros.
    top_rows = (out[:, 0, 0, 0].astype(int) - 2) // 4
    assert top_rows.min() == 0 and top_rows.max() == 3
    shifted_down = out[(out[:, 0, 0, 0] == 2) & (out[:, 3, 0, 0] == 2)]
    assert len(shifted_down) > 0
    assert (shifted_down[:, :3, :, 0] == 2).all()


def test_a_new_draw_each_call():
    images = _coordinate_images(64)
    rng = np.random.default_rng(2)
    assert not np.array_equal(shift_flip(images, rng), shift_flip(images, rng))


def test_no_shift_no_flip_is_identity():
    images = _coordinate_images(8)
    np.testing.assert_array_equal(shift_flip(images, np.random.default_rng(3), shift=0.0, flip=False), images)
