"""Model builders, one function each. Preprocessing lives inside the model, so a saved ``.h5`` takes
raw RGB images (N, 32, 32, 3) with values 0-255 and returns class probabilities.

The softmax is computed in float32 whatever the dtype policy (``trainer.precision=mixed`` computes the rest in
float16 or bfloat16), so the probabilities and the loss keep their precision.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import keras
from keras import layers


def _report_stack(
    name: str,
    conv: Callable[[int], list[layers.Layer]],
    num_classes: int,
    dropout: tuple[float, float, float],
    input_shape: tuple[int, int, int],
) -> keras.Model:
    """The report's layer stack with ``conv(filters)`` as each convolution block."""
    conv2_rate, conv3_rate, dense_rate = dropout
    return keras.Sequential(
        [
            keras.Input(shape=input_shape, name="image"),
            layers.Rescaling(1.0 / 255, name="rescale_0_255"),
            *conv(32),
            layers.MaxPooling2D(),
            *conv(64),
            layers.MaxPooling2D(),
            layers.Dropout(conv2_rate),
            *conv(128),
            layers.MaxPooling2D(),
            layers.Dropout(conv3_rate),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dropout(dense_rate),
            layers.Dense(num_classes, activation="softmax", name="probabilities", dtype="float32"),
        ],
        name=name,
    )


def report_cnn(
    num_classes: int = 100,
    dropout: tuple[float, float, float] = (0.1, 0.25, 0.5),
    input_shape: tuple[int, int, int] = (32, 32, 3),
) -> keras.Model:
    """The 2017 report's CNN: Conv32-Pool-Conv64-Pool-Dropout-Conv128-Pool-Dropout-Dense512-Dropout-Dense.

    ``dropout`` gives the three rates: after the second block, after the third, after the dense layer.
    """
    return _report_stack(
        "report_cnn",
        lambda filters: [layers.Conv2D(filters, 3, padding="same", activation="relu")],
        num_classes,
        dropout,
        input_shape,
    )


def _conv_bn(filters: int, **kwargs: Any) -> list[layers.Layer]:
    """A 3x3 convolution without bias, batch norm, ReLU."""
    return [
        layers.Conv2D(filters, 3, padding="same", use_bias=False, **kwargs),
        layers.BatchNormalization(),
        layers.ReLU(),
    ]


def report_cnn_bn(
    num_classes: int = 100,
    dropout: tuple[float, float, float] = (0.1, 0.25, 0.5),
    input_shape: tuple[int, int, int] = (32, 32, 3),
) -> keras.Model:
    """:func:`report_cnn` with batch normalisation between each convolution and its ReLU."""
    return _report_stack("report_cnn_bn", _conv_bn, num_classes, dropout, input_shape)


def fast_cnn(
    num_classes: int = 100,
    dropout: tuple[float, float, float] = (0.0, 0.0, 0.0),
    input_shape: tuple[int, int, int] = (32, 32, 3),
) -> keras.Model:
    """A small fast net for CPUs: one convolution at full resolution, then two at each of 16, 8 and 4 pixels
    (64, 128, 256 channels), each with batch norm; global average pooling. ``dropout`` does not apply."""
    blocks: list[layers.Layer] = []
    for filters in (64, 128, 256):
        blocks += [layers.MaxPooling2D(), *_conv_bn(filters), *_conv_bn(filters)]
    return keras.Sequential(
        [
            keras.Input(shape=input_shape, name="image"),
            layers.Rescaling(1.0 / 255, name="rescale_0_255"),
            *_conv_bn(32),
            *blocks,
            layers.GlobalAveragePooling2D(),
            layers.Dense(num_classes, activation="softmax", name="probabilities", dtype="float32"),
        ],
        name="fast_cnn",
    )


def _preact_block(x, filters: int, stride: int):
    """BN-ReLU-conv-BN-ReLU-conv; the shortcut is a strided 1x1 convolution of the pre-activated input where the
    shape changes (He et al. 2016, "Identity mappings in deep residual networks")."""
    activated = layers.ReLU()(layers.BatchNormalization()(x))
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False)(activated)
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(activated)
    y = layers.ReLU()(layers.BatchNormalization()(y))
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
    return layers.Add()([y, shortcut])


def preact_resnet18(
    num_classes: int = 100,
    dropout: tuple[float, float, float] = (0.0, 0.0, 0.0),
    input_shape: tuple[int, int, int] = (32, 32, 3),
) -> keras.Model:
    """Pre-activation ResNet-18 for 32x32 images: a 3x3 stem, four stages of two blocks (64, 128, 256, 512
    channels, stride 2 from the second stage on), BN-ReLU, global average pooling. ``dropout`` does not apply."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale_0_255")(inputs)
    x = layers.Conv2D(64, 3, padding="same", use_bias=False)(x)
    for stage, filters in enumerate((64, 128, 256, 512)):
        x = _preact_block(x, filters, 1 if stage == 0 else 2)
        x = _preact_block(x, filters, 1)
    x = layers.GlobalAveragePooling2D()(layers.ReLU()(layers.BatchNormalization()(x)))
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="preact_resnet18")


BUILDERS = {
    "report_cnn": report_cnn,
    "report_cnn_bn": report_cnn_bn,
    "fast_cnn": fast_cnn,
    "preact_resnet18": preact_resnet18,
}


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


def forward_flops(model: keras.Model) -> int:
    """FLOPs of one forward pass of one image (two per multiply-add; batch norm, pooling and ReLU left out)."""
    return 2 * multiply_adds(model)


def _has_gpu() -> bool:
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return jax.default_backend() == "gpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


@contextmanager
def precision(name: str) -> Iterator[str]:
    """Keras' dtype policy for ``trainer.precision`` while models are built, restored after (layers keep the
    policy they were built with): ``float32``, or ``mixed``, float16 compute on a GPU (Keras then scales the loss
    by itself) and bfloat16 on a CPU, float32 variables either way."""
    policy = "float32" if name == "float32" else ("mixed_float16" if _has_gpu() else "mixed_bfloat16")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield policy
    finally:
        keras.config.set_dtype_policy(previous)
