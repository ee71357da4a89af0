"""Per-epoch checkpoints that survive ``kill -9``: every variable of the model (weights and the dropout
layers' random-generator states) and of the optimizer, plus the epoch logs so far.

Each checkpoint is one ``.npz`` written to a temporary name and renamed into place (atomic on POSIX), so
a reader sees either the previous checkpoint or the new one, never half of one. Only the latest is kept.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from cifar_exp.errors import CheckpointError

if TYPE_CHECKING:
    import keras

PATTERN = re.compile(r"^epoch_(\d{5})\.npz$")


@dataclass
class Checkpoint:
    """What a run needs to continue exactly where it stopped: weights, optimizer state and the epochs' logs."""

    epochs_done: int  # completed epochs: training resumes at this 0-based epoch
    model_variables: list[np.ndarray]
    optimizer_variables: list[np.ndarray]
    history: dict[str, list[float]]


def save(folder: Path, epochs_done: int, model: "keras.Model", history: dict[str, list[float]]) -> Path:
    """Atomically write the checkpoint after ``epochs_done`` epochs and drop the older ones."""
    import keras

    folder.mkdir(parents=True, exist_ok=True)
    arrays = {f"model_{i:04d}": keras.ops.convert_to_numpy(v) for i, v in enumerate(model.variables)}
    arrays.update(
        {f"optimizer_{i:04d}": keras.ops.convert_to_numpy(v) for i, v in enumerate(model.optimizer.variables)}
    )
    arrays["history"] = np.array(json.dumps(history))
    final = folder / f"epoch_{epochs_done:05d}.npz"
    partial = folder / f".{final.name}.partial"
    try:
        with open(partial, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, final)
    except OSError as error:  # a full disk: leave the previous checkpoint, and no half of this one
        partial.unlink(missing_ok=True)
        if error.filename is None:  # written through a file object: name the file, so the user learns which disk
            raise OSError(error.errno, error.strerror, str(final)) from error
        raise
    except BaseException:  # a stop signal: the same
        partial.unlink(missing_ok=True)
        raise
    for old in folder.glob("epoch_*.npz"):
        if old != final:
            old.unlink(missing_ok=True)
    return final


def newest(folder: Path) -> Optional[tuple[int, Path]]:
    """(epochs done, file) of the newest checkpoint in ``folder``, read off its name; None if there is none."""
    found = sorted((int(m.group(1)), p) for p in folder.glob("epoch_*.npz") if (m := PATTERN.match(p.name)))
    return found[-1] if found else None


def latest(folder: Path) -> Optional[Checkpoint]:
    """The newest checkpoint in ``folder``, or None; :class:`CheckpointError` if it cannot be read."""
    found = newest(folder)
    if found is None:
        return None
    epochs_done, path = found
    try:
        with np.load(path, allow_pickle=False) as z:
            model_vars = [z[k] for k in sorted(k for k in z.files if k.startswith("model_"))]
            optimizer_vars = [z[k] for k in sorted(k for k in z.files if k.startswith("optimizer_"))]
            history = json.loads(str(z["history"]))
    except Exception as error:  # zipfile, numpy and json each raise their own kinds for a damaged file
        raise CheckpointError(
            f"the checkpoint {path} is truncated or corrupt ({type(error).__name__}: {error}). Delete it to start "
            f"that run's config afresh (rm -r {path.parent}), or resume another run of the config "
            "(resume=<run id>); resume=auto skips a damaged checkpoint by itself."
        ) from error
    if len(history.get("loss", [])) != epochs_done:
        raise CheckpointError(
            f"the checkpoint {path} holds {len(history.get('loss', []))} epochs of logs for "
            f"{epochs_done} epochs of training; delete it (rm -r {path.parent})."
        )
    return Checkpoint(epochs_done, model_vars, optimizer_vars, history)


def restore(model: "keras.Model", checkpoint: Checkpoint) -> None:
    """Load a checkpoint into a freshly built and compiled model of the same config."""
    model.optimizer.build(model.trainable_variables)
    for variables, values, what in (
        (model.variables, checkpoint.model_variables, "model"),
        (model.optimizer.variables, checkpoint.optimizer_variables, "optimizer"),
    ):
        if len(variables) != len(values):
            raise ValueError(f"checkpoint has {len(values)} {what} variables, the model {len(variables)}")
        for variable, value in zip(variables, values):
            variable.assign(value)
