from __future__ import annotations

import keras
import numpy as np
import pytest

from cifar_exp.models import BUILDERS, build, forward_flops, multiply_adds, precision, report_cnn


def test_report_architecture():
    model = report_cnn(100, (0.1, 0.25, 0.5))
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "Rescaling",
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Dropout",
        "Conv2D",
        "MaxPooling2D",
        "Dropout",
        "Flatten",
        "Dense",
        "Dropout",
        "Dense",
    ]
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [0.1, 0.25, 0.5]
    # 896 + 18,496 + 73,856 + 2048*512+512 + 512*100+100
    assert model.count_params() == 896 + 18_496 + 73_856 + 1_049_088 + 51_300
    assert model.output_shape == (None, 100)


def test_multiply_adds():
    model = report_cnn(100, (0, 0, 0))
    expected = 32 * 32 * 32 * 27 + 16 * 16 * 64 * 9 * 32 + 8 * 8 * 128 * 9 * 64 + 2048 * 512 + 512 * 100
    assert multiply_adds(model) == expected


def test_h5_is_self_contained_and_takes_raw_images(tmp_path):
    model = report_cnn(20, (0.1, 0.25, 0.5))
    model.compile("adam", "sparse_categorical_crossentropy")
    images = np.random.default_rng(0).integers(0, 256, size=(8, 32, 32, 3)).astype(np.uint8)
    before = model.predict(images, verbose=0)
    model.save(tmp_path / "m.h5")
    reloaded = keras.models.load_model(tmp_path / "m.h5")
    after = reloaded.predict(images, verbose=0)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_model_takes_raw_images_and_gives_probabilities(name):
    model = build(name, 100, (0.1, 0.25, 0.5))
    images = np.random.default_rng(0).integers(0, 256, size=(2, 32, 32, 3)).astype(np.uint8)
    probabilities = model.predict(images, verbose=0)
    assert probabilities.shape == (2, 100) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert forward_flops(model) == 2 * multiply_adds(model) > 0


def test_model_sizes():
    # batch norm instead of conv biases: 4 numbers per channel (2 trained) for the 32 + 64 + 128 channels
    bn = build("report_cnn_bn", 100, (0.1, 0.25, 0.5)).count_params()
    assert bn == build("report_cnn", 100, (0, 0, 0)).count_params() + 3 * (32 + 64 + 128)
    fast = build("fast_cnn", 100, (0, 0, 0))
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in fast.layers) == 7
    resnet = build("preact_resnet18", 100, (0, 0, 0))
    assert 11.1e6 < resnet.count_params() < 11.3e6  # He et al.'s CIFAR ResNet-18: 11.2 M
    assert 0.55e9 < multiply_adds(resnet) < 0.56e9


def test_mixed_precision_is_scoped_to_the_build():
    with precision("mixed") as policy:
        model = build("report_cnn_bn", 100, (0, 0, 0))
    assert policy == "mixed_bfloat16"  # no GPU here
    assert keras.config.dtype_policy().name == "float32"
    assert model.layers[1].compute_dtype == "bfloat16" and model.layers[1].variable_dtype == "float32"
    assert model.layers[-1].compute_dtype == "float32"  # the softmax
    assert model.predict(np.zeros((1, 32, 32, 3), np.uint8), verbose=0).dtype == np.float32
