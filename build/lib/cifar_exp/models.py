"""Model builders, one function each. Preprocessing lives inside the model, so a saved ``.h5`` takes
raw RGB images (N, 32, 32, 3) with values 0-255 and returns class probabilities."""

from __future__ import annotations

import keras
from keras import layers


def report_cnn(num_classes: int = 100, dropout: tuple[float, float, float] = (0.1, 0.25, 0.5),
               input_shape: tuple[int, int, int] = (32, 32, 3)) -> keras.Model:
    """The 2017 report's CNN: Conv32-Pool-Conv64-Pool-Dropout-Conv128-Pool-Dropout-Dense512-Dropout-Dense.

    ``dropout`` gives the three rates: after the second block, after the third, after the dense layer.
    """
    conv2_rate, conv3_rate, dense_rate = dropout
    return keras.Sequential(
        [
            keras.Input(shape=input_shape, name="image"),
            layers.Rescaling(1.0 / 255, name="rescale_0_255"),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(conv2_rate),
            layers.Conv2D(128, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(conv3_rate),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dropout(dense_rate),
            layers.Dense(num_classes, activation="softmax", name="probabilities"),
        ],
        name="report_cnn",
    )


BUILDERS = {"report_cnn": report_cnn}


def build(name: str, num_classes: int, dropout: tuple[float, float, float]) -> keras.Model:
    """Build the model called ``name`` (a key of :data:`BUILDERS`)."""
    return BUILDERS[name](num_classes=num_classes, dropout=dropout)


def multiply_adds(model: keras.Model) -> int:
    """Multiply-adds of one forward pass of one image through the Conv2D and Dense layers."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            _, h, w, out_channels = layer.output.shape
            kh, kw = layer.kernel_size
            total += h * w * out_channels * kh * kw * layer.input.shape[-1]
        elif isinstance(layer, layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)
