"""``cifar-exp predict <model> <images...>``: the five likeliest classes of each image, with their superclass and
probability, as a table or as JSON (``--json``). Models: see :mod:`cifar_exp.model_ref`; images: see
:mod:`cifar_exp.images`."""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

from cifar_exp.labels import Labels

TOP = 5


def top_classes(probabilities: np.ndarray, labels: Labels, k: int = TOP) -> list[list[dict[str, Any]]]:
    """For each row of class probabilities, its ``k`` likeliest classes, likeliest first."""
    ranked = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [
        [
            {
                "rank": rank + 1,
                "index": int(i),
                "class": labels.class_names[i],
                "superclass": labels.superclass_of(int(i)),
                "probability": float(row[i]),
            }
            for rank, i in enumerate(order)
        ]
        for row, order in zip(probabilities, ranked)
    ]


def as_table(names: Sequence[str], tops: Sequence[list[dict[str, Any]]], source: str) -> str:
    """One block per image: rank, class, superclass, probability."""
    width = max([len(c["class"]) for top in tops for c in top] + [5])
    super_width = max([len(c["superclass"]) for top in tops for c in top] + [10])
    lines = [f"model: {source}"]
    for name, top in zip(names, tops):
        lines += ["", name, f"  rank  {'class':<{width}}  {'superclass':<{super_width}}  probability"]
        lines += [
            f"  {c['rank']:>4}  {c['class']:<{width}}  {c['superclass'] or '-':<{super_width}}  "
            f"{c['probability']:>10.2%}"
            for c in top
        ]
    return "\n".join(lines)


def as_json(names: Sequence[str], tops: Sequence[list[dict[str, Any]]], source: str) -> str:
    """``{"model": ..., "predictions": [{"input": name, "top5": [...]}, ...]}``."""
    return json.dumps(
        {"model": source, "predictions": [{"input": n, f"top{TOP}": t} for n, t in zip(names, tops)]}, indent=1
    )


def predict(reference: str, paths: Sequence[str], tracking_uri: str, as_json_output: bool = False) -> str:
    """Load the model and the images, and return the printed result."""
    from cifar_exp import images, model_ref

    x, names = images.read_inputs(paths)  # before the model: a bad image fails in a second, not after TensorFlow
    loaded = model_ref.load(reference, tracking_uri)
    probabilities = loaded.probabilities(x)
    tops = top_classes(probabilities, loaded.labels)
    return (as_json if as_json_output else as_table)(names, tops, loaded.source)
