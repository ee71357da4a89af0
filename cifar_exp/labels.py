"""What turns a model's outputs into names, and how its run measured it: the labels a trained model carries in
its MLflow Model's metadata, inside its ``.h5`` (a root attribute Keras ignores), or in a ``labels.json`` beside
a bare model file. One home for the format, so a field added here reaches every place a model is saved or read."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

if TYPE_CHECKING:
    from cifar_exp.data import Dataset

H5_ATTRIBUTE = "cifar_exp_labels"  # the root attribute of a run's .h5 that holds its labels as JSON


@dataclass(frozen=True)
class Labels:
    """Class names (and, for fine labels, the superclass of each), and whether the run measured its test figures
    with flip test-time augmentation (``predict`` and ``evaluate`` then measure the same way)."""

    label_mode: str  # fine (100 classes) or coarse (20 superclasses)
    class_names: list[str]
    coarse_names: list[str] = field(default_factory=list)  # empty where unknown
    fine_to_coarse: list[int] = field(default_factory=list)  # the superclass of each fine class; empty where unknown
    tta_flip: bool = False

    @classmethod
    def of_dataset(cls, data: "Dataset", tta_flip: bool) -> "Labels":
        """The labels of a model trained on ``data``."""
        return cls(
            label_mode=data.label_mode,
            class_names=list(data.class_names),
            coarse_names=list(data.coarse_names),
            fine_to_coarse=[int(c) for c in data.fine_to_coarse],
            tta_flip=bool(tta_flip),
        )

    @classmethod
    def generic(cls, num_classes: int) -> "Labels":
        """For a model that came without any: class_00, class_01, ...; no superclasses."""
        return cls("fine" if num_classes != 20 else "coarse", [f"class_{i:02d}" for i in range(num_classes)])

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Labels":
        """From saved labels; fields a model saved before they existed take their defaults, unknown ones are left."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def superclass_of(self, index: int) -> str:
        """The superclass name of class ``index``: itself for a coarse-label model, "" where there is no map."""
        if self.label_mode == "coarse":
            return self.class_names[index]
        if index < len(self.fine_to_coarse) and 0 <= self.fine_to_coarse[index] < len(self.coarse_names):
            return self.coarse_names[self.fine_to_coarse[index]]
        return ""

    def write_h5(self, path: Path) -> None:
        """Store the labels in the ``.h5`` itself, so the file names its classes wherever it goes."""
        import h5py

        with h5py.File(path, "a") as h5:
            h5.attrs[H5_ATTRIBUTE] = json.dumps(self.to_dict())

    @classmethod
    def of_file(cls, path: Path) -> Optional["Labels"]:
        """The labels a run wrote into its ``.h5``, else those of a ``labels.json`` beside the file, else None."""
        if path.suffix == ".h5":
            import h5py

            with h5py.File(path, "r") as h5:
                if H5_ATTRIBUTE in h5.attrs:
                    return cls.from_dict(json.loads(h5.attrs[H5_ATTRIBUTE]))
        beside = path.with_name("labels.json")
        return cls.from_dict(json.loads(beside.read_text())) if beside.exists() else None
