"""Top-5 classes with their superclass, as a table or JSON (the model side is in test_model_lifecycle.py)."""

from __future__ import annotations

import json
import re

import numpy as np

from cifar_exp.labels import Labels
from cifar_exp.predict import as_json, as_table, top_classes

FINE = Labels(
    label_mode="fine",
    class_names=[f"fine{i}" for i in range(100)],
    coarse_names=[f"coarse{i}" for i in range(20)],
    fine_to_coarse=[i % 20 for i in range(100)],
)


def test_top_classes_are_the_likeliest_first_with_superclasses():
    probabilities = np.full((1, 100), 0.001)
    probabilities[0, [42, 7, 99, 3, 55]] = [0.5, 0.2, 0.1, 0.05, 0.04]
    (top,) = top_classes(probabilities, FINE)
    assert [c["index"] for c in top] == [42, 7, 99, 3, 55]
    assert top[0] == {"rank": 1, "index": 42, "class": "fine42", "superclass": "coarse2", "probability": 0.5}


def test_table_and_json():
    tops = top_classes(np.eye(100)[[1, 2]], FINE)
    table = as_table(["a.png", "b.png"], tops, "models:/x@best")
    assert table.splitlines()[0] == "model: models:/x@best"
    assert re.search(r"(?m)^ +1  fine1  coarse1 +100\.00%$", table)
    parsed = json.loads(as_json(["a.png", "b.png"], tops, "models:/x@best"))
    assert parsed["predictions"][1]["input"] == "b.png" and parsed["predictions"][1]["top5"][0]["class"] == "fine2"
