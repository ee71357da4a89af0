from __future__ import annotations

import keras
import numpy as np

from cifar_exp.models import multiply_adds, report_cnn


def test_report_architecture():
    model = report_cnn(100, (0.1, 0.25, 0.5))
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Rescaling", "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Dropout", "Conv2D",
                     "MaxPooling2D", "Dropout", "Flatten", "Dense", "Dropout", "Dense"]
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
