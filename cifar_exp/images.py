"""Images for ``cifar-exp predict``: PNG/JPEG (any format Pillow reads) or arrays in an ``.npz``, as the uint8 RGB
(N, 32, 32, 3) batches the models take.

Image files of another size are cropped to their largest centred square and resized to 32x32 with Lanczos
filtering (``PIL.ImageOps.fit``), the way CIFAR's images frame one object; the EXIF orientation is applied first,
transparency or a palette is dropped by converting to RGB, and 16-bit grayscale is scaled to 8 bits. A 32x32 RGB
image passes through unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from cifar_exp.data_checks import exact_uint8
from cifar_exp.errors import DataError, InputError

if TYPE_CHECKING:
    import PIL.Image

SIZE = (32, 32)


def read_image(path: Path) -> np.ndarray:
    """One image file as a (32, 32, 3) uint8 array."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            image = _rgb(ImageOps.exif_transpose(opened))
    except FileNotFoundError as error:
        raise InputError(f"{path}: no such file.") from error
    except Image.DecompressionBombError as error:
        raise InputError(f"{path} is too large to open safely ({error}); resize it first.") from error
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise InputError(
            f"{path} cannot be read as an image ({type(error).__name__}: {error}); give PNG or JPEG "
            "files, or an .npz of uint8 images (N, 32, 32, 3)."
        ) from error
    if image.size != SIZE:
        image = ImageOps.fit(image, SIZE, method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    return np.asarray(image, dtype=np.uint8)


def _rgb(image: "PIL.Image.Image") -> "PIL.Image.Image":
    """The image in 8-bit RGB. 16-bit grayscale (a 16-bit PNG opens as ``I;16``, or ``I``) is scaled down to 8 bits:
    Pillow's own conversion would clip every value above 255 to white."""
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image, dtype=np.float64)
        if image.mode != "I" or values.max() > 255:
            values = values / 257
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def read_npz(path: Path) -> np.ndarray:
    """The images of an ``.npz``: its array ``x`` (the dataset's layout), or its only array; (N, 32, 32, 3) or
    one (32, 32, 3) image, integer values 0-255."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            names = list(arrays.files)
            if "x" in names or len(names) == 1:
                x = arrays["x" if "x" in names else names[0]]
            else:
                raise InputError(
                    f"{path} holds the arrays {names}; expected one named x (N, 32, 32, 3), or a single array."
                )
    except FileNotFoundError as error:
        raise InputError(f"{path}: no such file.") from error
    except InputError:
        raise
    except Exception as error:  # zipfile, pickle refusal, truncated data: all mean "not a readable npz"
        raise InputError(f"{path} is not a readable .npz ({type(error).__name__}: {error}).") from error
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1:] != (*SIZE, 3):
        raise InputError(f"{path}: images of shape {x.shape}, expected (N, 32, 32, 3) RGB (HWC), or one (32, 32, 3).")
    if not len(x):
        raise InputError(f"{path} holds no images (an array of shape {x.shape}).")
    try:  # the same rule as a dataset's images: whole values 0-255, whatever the dtype (the model rescales them)
        return exact_uint8(x, f"{path}: the images")
    except DataError as error:
        raise InputError(str(error)) from error


def read_inputs(paths: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """All images of ``paths`` as one batch, with a name for each: the file, or ``file[i]`` inside an ``.npz``."""
    batches, names = [], []
    for name in paths:
        path = Path(name)
        if path.suffix.lower() == ".npz":
            x = read_npz(path)
            names += [f"{name}[{i}]" for i in range(len(x))]
        else:
            x = read_image(path)[None]
            names.append(name)
        batches.append(x)
    if not names:
        raise InputError("no images: give PNG or JPEG files, or an .npz of uint8 images (N, 32, 32, 3).")
    return np.concatenate(batches), names
