"""shift_flip: whole-pixel shifts of up to 10% per axis with nearest fill, flips with p=1/2, each independent
per image and per call. keras2: Keras 2's continuous shifts, bilinear with nearest fill, checked against
scipy.ndimage.affine_transform, which Keras 2's ImageDataGenerator called."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, stats

from cifar_exp.augment import AUGMENTATIONS, keras2_draws, keras2_shift_flip, max_shift_pixels, shift_flip, translate


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


# keras2: the exact variant


def _random_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def test_whole_pixel_shifts_are_exact_translations_with_nearest_fill():
    images = _random_images(6)
    dy, dx = np.array([0, 3, -3, 2, -1, 0]), np.array([0, -2, 3, 0, 1, -3])
    out = translate(images, dy, dx, np.zeros(6, dtype=bool))
    assert out.dtype == np.uint8 and out.shape == images.shape
    for image, shifted, y, x in zip(images, out, dy, dx):
        rows, cols = np.clip(np.arange(32) + y, 0, 31), np.clip(np.arange(32) + x, 0, 31)
        np.testing.assert_array_equal(shifted, image[rows][:, cols])


def test_a_half_pixel_shift_averages_neighbours():
    image = _random_images(1).astype(np.float64)
    out = translate(image.astype(np.uint8), np.array([0.0]), np.array([0.5]), np.array([False]))[0]
    np.testing.assert_array_equal(out[:, :31], np.rint((image[0, :, :31] + image[0, :, 1:]) / 2))
    np.testing.assert_array_equal(out[:, 31], image[0, :, 31])  # past the edge: the edge pixel (nearest fill)
    both = translate(image.astype(np.uint8), np.array([0.5]), np.array([0.5]), np.array([False]))[0]
    corners = (image[0, :31, :31] + image[0, 1:, :31] + image[0, :31, 1:] + image[0, 1:, 1:]) / 4
    assert np.abs(both[:31, :31] - corners).max() <= 0.5 + 1e-4


def test_flip_mirrors_the_shifted_image():
    images = _random_images(2)
    dy, dx = np.array([1.25, -2.5]), np.array([0.75, 3.1])
    plain = translate(images, dy, dx, np.array([False, False]))
    flipped = translate(images, dy, dx, np.array([True, True]))
    np.testing.assert_array_equal(flipped, plain[:, :, ::-1])


def test_matches_scipy_affine_transform_as_keras2_called_it():
    """Keras 2: ndimage.affine_transform(channel, identity, offset=(tx, ty), order=1, mode='nearest'), per
    channel, on float images; ours rounds to uint8, so at most half a grey level away."""
    images = _random_images(16, seed=1)
    dy, dx, flipped = keras2_draws(16, 32, 32, np.random.default_rng(2))
    out = translate(images, dy, dx, flipped)
    for image, result, y, x, flip in zip(images, out, dy, dx, flipped):
        reference = np.stack(
            [
                ndimage.affine_transform(
                    image[..., c].astype(np.float64), np.eye(2), offset=(y, x), order=1, mode="nearest"
                )
                for c in range(3)
            ],
            axis=-1,
        )
        reference = reference[:, ::-1] if flip else reference
        assert np.abs(result - reference).max() <= 0.5 + 1e-4


def test_shifts_are_continuous_uniform_within_ten_percent():
    dy, dx, flipped = keras2_draws(20000, 32, 32, np.random.default_rng(3))
    for shifts in (dy, dx):
        assert shifts.min() >= -3.2 and shifts.max() <= 3.2
        assert stats.kstest(shifts, stats.uniform(loc=-3.2, scale=6.4).cdf).pvalue > 0.001
        assert len(np.unique(np.round(shifts, 3))) > 5000  # continuous, not seven whole pixels
    assert abs(flipped.mean() - 0.5) < 0.02
    assert abs(np.corrcoef(dy, dx)[0, 1]) < 0.03
    assert not keras2_draws(100, 32, 32, np.random.default_rng(4), flip=False)[2].any()


def test_keras2_draws_then_translates():
    images = _random_images(32)
    out = keras2_shift_flip(images, np.random.default_rng(5))
    assert out.shape == images.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, translate(images, *keras2_draws(32, 32, 32, np.random.default_rng(5))))
    rng = np.random.default_rng(6)
    assert not np.array_equal(keras2_shift_flip(images, rng), keras2_shift_flip(images, rng))
    np.testing.assert_array_equal(keras2_shift_flip(images, rng, shift=0.0, flip=False), images)


def test_keras2_on_a_full_batch_of_coordinate_images():
    """Read the shift back from images whose pixels encode their own coordinates: within +-3.2 px."""
    out = keras2_shift_flip(_coordinate_images(500), np.random.default_rng(7), flip=False)
    source_rows = (out[:, 16, 16, 0].astype(float) - 2) / 4 - 16
    assert np.abs(source_rows).max() <= 3.2 + 0.13 and np.abs(source_rows).max() > 2.5
    assert len(np.unique(out[:, 16, 16, 0])) > 7  # sub-pixel positions, not whole pixels only


@pytest.mark.parametrize("name", ["shift_flip", "keras2"])
def test_augmentations_by_name(name):
    images = _random_images(4)
    out = AUGMENTATIONS[name](images, np.random.default_rng(8), shift=0.1, flip=True)
    assert out.shape == images.shape and out.dtype == np.uint8


def test_the_trainer_dispatches_by_name():
    from conftest import compose_config

    from cifar_exp.augment import make_augmentation

    images = _random_images(8)
    assert make_augmentation(compose_config(["augmentation=none"]).augmentation) is None
    augment = make_augmentation(compose_config(["augmentation=keras2"]).augmentation)
    np.testing.assert_array_equal(
        augment(images, np.random.default_rng(9)),
        keras2_shift_flip(images, np.random.default_rng(9), shift=0.1, flip=True),
    )
