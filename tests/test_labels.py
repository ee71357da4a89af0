"""The labels a model carries (cifar_exp.labels): names, superclasses, how its run measured it, and their files."""

from __future__ import annotations

import json

import h5py

from cifar_exp.labels import H5_ATTRIBUTE, Labels


def test_coarse_models_are_their_own_superclass_and_unknown_maps_are_blank():
    coarse = Labels("coarse", [f"coarse{i}" for i in range(20)])
    assert coarse.superclass_of(3) == "coarse3"
    assert Labels("fine", ["a"] * 10).superclass_of(3) == ""
    assert Labels("fine", ["a", "b"], ["animals"], [0, 0]).superclass_of(1) == "animals"


def test_labels_saved_before_a_field_existed_still_load():
    """A model saved before tta_flip existed measured without it; a field this version does not know is left."""
    old = {"label_mode": "fine", "class_names": ["a", "b"], "coarse_names": [], "fine_to_coarse": []}
    assert Labels.from_dict(old) == Labels("fine", ["a", "b"])
    assert Labels.from_dict({**old, "tta_flip": True, "from_the_future": 1}).tta_flip


def test_an_h5_carries_its_labels_and_a_bare_file_reads_labels_json(tmp_path):
    labels = Labels("fine", ["a", "b"], ["s"], [0, 0], tta_flip=True)
    h5 = tmp_path / "model.h5"
    with h5py.File(h5, "w") as f:
        f.attrs["other"] = "kept"
    labels.write_h5(h5)
    assert Labels.of_file(h5) == labels
    with h5py.File(h5, "r") as f:
        assert json.loads(f.attrs[H5_ATTRIBUTE])["class_names"] == ["a", "b"] and f.attrs["other"] == "kept"
    bare = tmp_path / "other" / "model.keras"
    bare.parent.mkdir()
    assert Labels.of_file(bare) is None
    (bare.parent / "labels.json").write_text(json.dumps(Labels.generic(20).to_dict()))
    assert Labels.of_file(bare) == Labels("coarse", [f"class_{i:02d}" for i in range(20)])
