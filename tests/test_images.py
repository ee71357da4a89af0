"""Images for ``cifar-exp predict``: PNG/JPEG of any size and ``.npz`` arrays as uint8 (N, 32, 32, 3) batches."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cifar_exp.errors import InputError
from cifar_exp.images import read_image, read_inputs, read_npz


def test_a_32x32_png_passes_through_unchanged(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(x).save(tmp_path / "a.png")
    assert np.array_equal(read_image(tmp_path / "a.png"), x)


def test_other_sizes_are_centre_cropped_to_a_square_and_resized(tmp_path):
    wide = np.zeros((40, 120, 3), np.uint8)
    wide[:, 40:80] = 255  # a white centre square between black side bands that the crop drops
    Image.fromarray(wide).save(tmp_path / "wide.png")
    image = read_image(tmp_path / "wide.png")
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert image.min() >= 240  # white (Lanczos rings a little at the crop's edge), the black bands gone


def test_grayscale_and_transparent_images_become_rgb(tmp_path):
    Image.new("L", (50, 50), 128).save(tmp_path / "gray.png")
    Image.new("RGBA", (32, 32), (10, 20, 30, 0)).save(tmp_path / "clear.png")
    assert read_image(tmp_path / "gray.png").shape == (32, 32, 3)
    assert read_image(tmp_path / "clear.png")[0, 0].tolist() == [10, 20, 30]


def test_a_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    """Half grey in 16 bits (32768) is half grey in 8 bits (128), not white."""
    Image.fromarray(np.full((32, 32), 32768, np.uint16)).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    assert read_image(tmp_path / "deep.png").tolist() == np.full((32, 32, 3), 128).tolist()


def test_a_decompression_bomb_is_refused_in_one_paragraph(tmp_path, monkeypatch):
    Image.new("L", (400, 400)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100 // 2)  # Pillow refuses twice the limit
    with pytest.raises(InputError, match="too large to open safely"):
        read_image(tmp_path / "bomb.png")


def test_npz_and_files_make_one_batch_with_names(tmp_path):
    np.savez(tmp_path / "batch.npz", x=np.zeros((3, 32, 32, 3), np.uint8), y=np.zeros(3))
    np.savez(tmp_path / "one.npz", np.full((32, 32, 3), 7, np.int64))
    Image.new("RGB", (32, 32)).save(tmp_path / "c.jpg")
    x, names = read_inputs([str(tmp_path / "batch.npz"), str(tmp_path / "one.npz"), str(tmp_path / "c.jpg")])
    assert x.shape == (5, 32, 32, 3) and x.dtype == np.uint8 and x[3].max() == 7
    assert names == [
        f"{tmp_path}/batch.npz[0]",
        f"{tmp_path}/batch.npz[1]",
        f"{tmp_path}/batch.npz[2]",
        f"{tmp_path}/one.npz[0]",
        f"{tmp_path}/c.jpg",
    ]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("broken.png", b"\x89PNG\r\n\x1a\n cut short", "cannot be read as an image"),
        ("notes.txt", b"hello", "cannot be read as an image"),
        ("missing.png", None, "no such file"),
    ],
)
def test_unreadable_images_are_one_paragraph(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=message) as raised:
        read_image(tmp_path / name)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "arrays,message",
    [
        ({"x": np.zeros((2, 28, 28, 3), np.uint8)}, "expected \\(N, 32, 32, 3\\)"),
        ({"x": np.zeros((0, 32, 32, 3), np.uint8)}, "bad.npz holds no images"),
        ({"x": np.full((1, 32, 32, 3), 0.5)}, "hold fractional values \\(they look scaled to \\[0, 1\\]"),
        ({"x": np.full((1, 32, 32, 3), 300)}, "hold values in \\[300, 300\\], outside 0..255"),
        ({"x": np.full((1, 32, 32, 3), np.nan)}, "hold 3072 NaN or infinite values"),
        ({"a": np.zeros(1), "b": np.zeros(1)}, "expected one named x"),
    ],
)
def test_bad_npz_contents_are_named(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputError, match=message):
        read_npz(tmp_path / "bad.npz")


def test_a_truncated_npz_is_named(tmp_path):
    (tmp_path / "cut.npz").write_bytes(b"PK\x03\x04 cut")
    with pytest.raises(InputError, match="not a readable .npz"):
        read_npz(tmp_path / "cut.npz")


def test_whole_valued_float_images_are_taken_as_a_dataset_takes_them(tmp_path):
    """The rule of data_checks.exact_uint8: an .npz that trains also predicts."""
    np.savez(tmp_path / "floats.npz", x=np.full((2, 32, 32, 3), 7.0, np.float32))
    x = read_npz(tmp_path / "floats.npz")
    assert x.dtype == np.uint8 and (x == 7).all()
