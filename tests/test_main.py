"""End to end through the real command line: ``python -m cifar_exp`` on tiny generated data."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import WITHOUT_TENSORFLOW, all_runs, artifact_paths, cli, sweep_runs, tiny
from mlflow.tracking import MlflowClient

from cifar_exp.cli import parser

EPOCH_METRICS = {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_seconds", "images_per_second"}
TEST_METRICS = {"test_loss", "test_accuracy", "test_top5_accuracy", "test_superclass_accuracy"}
ARTIFACTS = {
    "model/model.h5",
    "model_summary.txt",
    "plots/confusion_matrix.png",
    "plots/confusion_matrix_grayscale.png",
    "plots/superclass_confusion_matrix.png",
    "plots/learning_curves.png",
    "metrics/confusion_matrix.csv",
    "metrics/superclass_confusion_matrix.csv",
    "metrics/per_class_report.csv",
    "config/config.yaml",
    "config/overrides.yaml",
}


def tf_value(event) -> float:
    from tensorboard.util import tensor_util

    return tensor_util.make_ndarray(event.tensor_proto).item()


def test_one_run_records_everything(tmp_path, npz_dir, store_uri):
    done = cli(tmp_path, *tiny(npz_dir, store_uri), "optimizer.lr=1e-3", "seed=3", "trainer.test_each_epoch=true")
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = all_runs(store_uri)
    client = MlflowClient(store_uri)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "adam-lr1e-3-winning-shift_flip-s3"
    accuracy = run.data.metrics["test_accuracy"]
    assert f"done: run {run.info.run_id}, test accuracy {accuracy:.2%}" in done.stdout  # the result, said at the end
    browse = shlex.split(done.stdout.split("browse with: ")[1].strip().removesuffix(")"))  # opens this store
    assert Path(browse[0]).name == "cifar-exp" and parser().parse_args(browse[1:]).backend_store_uri == store_uri
    assert "HDF5 file via" not in done.stderr  # the .h5 is saved on purpose: Keras' "legacy format" warning is not said
    assert EPOCH_METRICS | TEST_METRICS | {"epoch_test_accuracy", "epoch_test_loss"} <= set(run.data.metrics)
    assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) == 1
    assert run.data.metrics["epoch_test_accuracy"] == pytest.approx(run.data.metrics["test_accuracy"])
    params = run.data.params
    assert params["optimizer.lr"] == "0.001" and params["dropout.conv2"] == "0.1" and params["seed"] == "3"
    assert "optimizer.lr=1e-3" in params["overrides"]
    tags = run.data.tags
    for key in (
        "git_commit",
        "git_dirty",
        "dataset_fingerprint",
        "python_version",
        "tensorflow_version",
        "keras_version",
        "mlflow_version",
        "cifar_exp_version",
        "command",
    ):
        assert tags.get(key), key
    assert "optimizer.lr=1e-3" in tags["command"]
    accuracy = f"{run.data.metrics['test_accuracy']:.2%}"
    assert tags["mlflow.note.content"].startswith(f"**adam-lr1e-3-winning-shift_flip-s3**: test accuracy {accuracy}")
    paths = artifact_paths(client, run.info.run_id)
    assert ARTIFACTS <= paths
    assert len(run.outputs.model_outputs) == 1  # the MLflow Model (see test_model_lifecycle.py)
    assert sorted(d.tags[0].value for d in run.inputs.dataset_inputs) == ["test", "train", "validation"]
    assert any(p.startswith("tensorboard/train/events.out.tfevents") for p in paths)

    # TensorBoard's own reader finds the per-epoch scalars in the logged event files.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = client.download_artifacts(run.info.run_id, "tensorboard", str(tmp_path))
    events = EventAccumulator(str(Path(logs) / "train")).Reload()
    assert "epoch_loss" in events.Tags()["tensors"]
    (loss,) = events.Tensors("epoch_loss")
    assert float(tf_value(loss)) == pytest.approx(run.data.metrics["loss"], rel=1e-5)

    # The logged .h5, reloaded in a fresh process on raw test images, reproduces the logged accuracy.
    model_file = client.download_artifacts(run.info.run_id, "model/model.h5", str(tmp_path))
    script = (
        "import sys, json, numpy as np, keras; m = keras.models.load_model(sys.argv[1]); "
        "z = np.load(sys.argv[2]); p = m.predict(z['x'], verbose=0); "
        "print(json.dumps(float((p.argmax(1) == z['y_fine']).mean())))"
    )
    reload = subprocess.run(
        [sys.executable, "-c", script, model_file, str(npz_dir / "test.npz")],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert reload.returncode == 0, reload.stderr[-2000:]
    assert json.loads(reload.stdout.strip().splitlines()[-1]) == pytest.approx(run.data.metrics["test_accuracy"])


def test_multirun_is_one_parent_with_children(tmp_path, npz_dir, store_uri):
    done = cli(
        tmp_path,
        "--multirun",
        *tiny(npz_dir, store_uri),
        "dropout=winning,baseline",
        "augmentation=none",
        "data.train_size=200",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    parent, children = sweep_runs(store_uri)
    assert [c.info.run_name for c in children] == ["adam-lr1e-4-baseline-none-s0", "adam-lr1e-4-winning-none-s0"]
    assert parent.info.run_name == "sweep-dropout"
    assert parent.data.metrics["jobs"] == 2 and parent.data.metrics["failed_jobs"] == 0
    assert parent.data.tags["best_job"] in {c.info.run_name for c in children}
    best = parent.data.tags["best_job"]
    assert parent.data.tags["mlflow.note.content"].startswith(f"2 jobs, 0 failed; best: **{best}**")


@pytest.mark.parametrize(
    "override,message",
    [
        ("optimizer.lr=-1e-4", "optimizer.lr"),
        ("dropout.dense=1.5", "dropout.dense"),
        ("trainer.batch_size=0", "trainer.batch_size"),
        ("data.path=/no/such/folder", "does not exist"),
    ],
)
def test_bad_config_fails_fast_before_any_run(tmp_path, npz_dir, store_uri, override, message):
    started = time.perf_counter()
    done = cli(tmp_path, *tiny(npz_dir, store_uri), override)
    assert done.returncode == 2 and message in done.stderr and "error:" in done.stderr
    assert "Traceback" not in done.stderr
    assert time.perf_counter() - started < 60
    assert not Path(store_uri.removeprefix("sqlite:///")).exists()


def test_unknown_option_and_wrong_type(tmp_path, npz_dir, store_uri):
    for override, message in (
        ("optimizer.nope=1", "nope"),
        ("trainer.epochs=ten", "trainer.epochs"),
        ("optimizer=rmsprop", "rmsprop"),
    ):
        done = cli(tmp_path, *tiny(npz_dir, store_uri), override)
        assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
        (paragraph,) = [line for line in done.stderr.splitlines() if line.strip()]  # Hydra's lines made one
        assert paragraph.startswith("error: ") and "Config search path" not in paragraph
    assert not Path(store_uri.removeprefix("sqlite:///")).exists()


# ``python -m cifar_exp`` with TensorFlow and Keras made unimportable: a command that fails before they load
# fails the same way under it; one that imports them says so.
def test_corrupt_dataset_fails_before_any_run_and_before_tensorflow_loads(tmp_path, store_uri):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.npz").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "data" / "test.npz").write_bytes(b"PK\x03\x04 truncated")
    args = [*tiny(tmp_path / "data", store_uri), f"hydra.run.dir={tmp_path}/outputs"]
    for command in ([sys.executable, "-m", "cifar_exp"], [sys.executable, "-c", WITHOUT_TENSORFLOW]):
        done = subprocess.run([*command, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, done.stderr[-2000:]
        assert f"{tmp_path / 'data' / 'train.npz'} is truncated or corrupt" in done.stderr, done.stderr[-2000:]
        assert "was imported before the error" not in done.stderr
    assert not (tmp_path / "mlruns").exists()  # not even an empty store is created for a run that cannot start


def test_a_refused_resume_is_said_before_tensorflow_loads(tmp_path, npz_dir, store_uri):
    args = [*tiny(npz_dir, store_uri), "resume=0123456789abcdef0123456789abcdef", f"hydra.run.dir={tmp_path}/outputs"]
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_TENSORFLOW, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2 and "resume=0123456789abcdef0123456789abcdef: no such run" in done.stderr
    assert "was imported before the error" not in done.stderr, done.stderr[-2000:]


def test_help_and_cfg(tmp_path):
    help_text = cli(tmp_path, "--help").stdout
    for group in (
        "optimizer: adam, adamw, sgd",
        "schedule: constant, cosine, keras2_decay, one_cycle",
        "dropout:",
        "augmentation: keras2, none, shift_flip",
        "data: keras, local",
    ):
        assert group in help_text
    job = cli(tmp_path, "--cfg", "job", "optimizer=sgd").stdout
    assert "name: sgd" in job and "epochs: 150" in job


def test_time_budget_stops_cleanly_and_says_so(tmp_path, npz_dir, store_uri):
    done = cli(tmp_path, *tiny(npz_dir, store_uri), "trainer.epochs=5", "trainer.max_minutes=1e-6")
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = all_runs(store_uri)
    assert run.info.status == "FINISHED"
    assert len(MlflowClient(store_uri).get_metric_history(run.info.run_id, "loss")) == 1
    assert run.data.tags["stopped_early"] == "trainer.max_minutes=1e-06: 1 of 5 epochs"
    assert run.data.metrics["epochs_run"] == 1
    assert "test_accuracy" in run.data.metrics
