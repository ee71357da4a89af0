"""From run to model, end to end on one tiny two-job sweep: the logged MLflow Model reloads through pyfunc and
reproduces the logged test accuracy, the sweep registers its best run (``models:/<name>@best``), ``cifar-exp
predict`` on PNG files agrees with the model on the same arrays, ``cifar-exp evaluate`` records an evaluation
run linked to the model, ``mlflow models serve`` answers over REST, and the store holds the dataset inputs and
system metrics."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from conftest import cli, serve, sweep_runs, tiny
from mlflow.tracking import MlflowClient

MODEL_NAME = "cifar_exp-sweep-optimizer.lr"  # tracking.register_as's default for this sweep


def cifar_exp(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """The ``cifar-exp`` console script of this environment."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [str(Path(sys.executable).with_name("cifar-exp")), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, npz_dir):
    """A finished two-job sweep of two epochs, each logging the lowest-val_loss epoch's weights and sampling system
    metrics every 0.5 s, in a fresh store: (uri, parent, children)."""
    folder = tmp_path_factory.mktemp("lifecycle")
    uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
    args = [a for a in tiny(npz_dir, uri) if not a.startswith("trainer.epochs=")]
    done = cli(
        folder,
        "--multirun",
        *args,
        "trainer.epochs=2",
        "trainer.restore_best=true",
        "optimizer.lr=1e-3,1e-4",
        "augmentation=none",
        "tracking.system_metrics_interval=0.5",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return (uri, *sweep_runs(uri))


@pytest.fixture()
def tracking_env(monkeypatch, sweep):
    """MLflow's process-wide store, for the fluent APIs (pyfunc, models:/ URIs) that read it."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sweep[0])
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", sweep[0])
    return sweep[0]


def test_logged_model_reloads_through_pyfunc_and_reproduces_the_test_accuracy(sweep, npz_dir, tracking_env):
    import mlflow.pyfunc

    uri, _, children = sweep
    for child in children:
        (output,) = child.outputs.model_outputs
        model = mlflow.pyfunc.load_model(f"models:/{output.model_id}")
        signature = model.metadata.signature.to_dict()
        assert '"uint8"' in signature["inputs"] and "[-1, 32, 32, 3]" in signature["inputs"]
        assert "[-1, 100]" in signature["outputs"]
        assert model.metadata.metadata["class_names"][:2] == ["fine0", "fine1"]
        test = np.load(npz_dir / "test.npz")
        probabilities = model.predict(test["x"])
        assert probabilities.shape == (len(test["x"]), 100)
        accuracy = float((probabilities.argmax(1) == test["y_fine"]).mean())
        assert accuracy == pytest.approx(child.data.metrics["test_accuracy"])
        logged = MlflowClient(uri).get_logged_model(output.model_id)
        assert logged.status == "READY" and logged.source_run_id == child.info.run_id
        assert {m.key: m.dataset_name for m in logged.metrics}["test_accuracy"] == "cifar100-test"


def test_restore_best_logs_the_lowest_val_loss_epoch(sweep):
    uri, _, children = sweep
    for child in children:
        val_loss = [
            m.value
            for m in sorted(MlflowClient(uri).get_metric_history(child.info.run_id, "val_loss"), key=lambda m: m.step)
        ]
        best = int(np.argmin(val_loss))
        tags = child.data.tags
        assert tags["restored_best_epoch"].startswith(f"epoch {best + 1} of 2 (val_loss {val_loss[best]:.4f}")
        note = tags["mlflow.note.content"]
        assert f"after 2 of 2 epochs (the weights of epoch {best + 1}, the lowest val_loss)" in note


def test_the_sweep_registers_its_best_run_under_an_alias(sweep, tracking_env):
    import mlflow.pyfunc

    uri, parent, children = sweep
    client = MlflowClient(uri, registry_uri=uri)
    version = client.get_model_version_by_alias(MODEL_NAME, "best")
    assert version.run_id == parent.data.tags["best_run_id"]
    assert parent.data.tags["registered_model"] == f"models:/{MODEL_NAME}@best (version {version.version})"
    best = next(c for c in children if c.info.run_id == version.run_id)
    assert best.data.metrics["test_accuracy"] == max(c.data.metrics["test_accuracy"] for c in children)
    assert mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@best").predict(np.zeros((1, 32, 32, 3), np.uint8)).shape == (
        1,
        100,
    )

    other = next(c for c in children if c is not best)
    done = cifar_exp("register", other.info.run_id, "--name", "picked", "--alias", "chosen", "--tracking-uri", uri)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "load it with models:/picked@chosen" in done.stdout
    assert client.get_model_version_by_alias("picked", "chosen").run_id == other.info.run_id
    again = cifar_exp("register", other.info.run_id, "--name", "picked", "--tracking-uri", uri)
    assert "is version 1 of picked" in again.stdout  # the same run is not registered twice


def test_predict_on_png_files_agrees_with_the_model_on_the_same_arrays(sweep, npz_dir, tmp_path, tracking_env):
    import mlflow.keras
    from PIL import Image

    x = np.load(npz_dir / "test.npz")["x"][:4]
    paths = []
    for i, image in enumerate(x):
        paths.append(tmp_path / f"image{i}.png")
        Image.fromarray(image).save(paths[-1])
    Image.fromarray(x[0]).resize((96, 64)).save(tmp_path / "large.jpg")
    done = cifar_exp(
        "predict",
        f"models:/{MODEL_NAME}@best",
        *map(str, paths),
        str(tmp_path / "large.jpg"),
        "--json",
        "--tracking-uri",
        sweep[0],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    predictions = json.loads(done.stdout)["predictions"]
    assert len(predictions) == 5 and all(len(p["top5"]) == 5 for p in predictions)
    expected = mlflow.keras.load_model(f"models:/{MODEL_NAME}@best").predict(x, verbose=0)
    assert [p["top5"][0]["index"] for p in predictions[:4]] == list(expected.argmax(1))
    assert [p["top5"][0]["probability"] for p in predictions[:4]] == pytest.approx(list(expected.max(1)), rel=1e-4)
    top = predictions[0]["top5"][0]
    assert top["class"] == f"fine{top['index']}" and top["superclass"] == f"coarse{top['index'] % 20}"

    from cifar_exp.predict import predict

    table = predict(sweep[2][0].info.run_id, [str(paths[0])], sweep[0])  # a run id; in process: no TF start-up
    assert "rank  class" in table and len(re.findall(r"(?m)^ +[1-5]  fine\d+ +coarse\d+ +\d+\.\d\d%$", table)) == 5

    # The .h5 alone names its classes too: the run wrote its labels into the file.
    h5 = MlflowClient(sweep[0]).download_artifacts(sweep[2][0].info.run_id, "model/model.h5", str(tmp_path))
    assert "  1  fine" in predict(h5, [str(paths[0])], sweep[0])


def test_predict_says_what_is_wrong_in_one_paragraph(sweep, tmp_path):
    import keras

    from cifar_exp.errors import ModelError
    from cifar_exp.model_ref import load

    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    done = cifar_exp("predict", sweep[2][0].info.run_id, str(tmp_path / "broken.png"), "--tracking-uri", sweep[0])
    assert done.returncode == 2 and "Traceback" not in done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: {tmp_path / 'broken.png'} cannot be read as an image")

    small = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    small.save(tmp_path / "mnist.h5")
    for reference, message in (
        (str(tmp_path / "mnist.h5"), "not 32x32 RGB images"),
        ("models:/no-such-model@best", "not found in the store"),
        ("0123456789abcdef0123456789abcdef", "no such run"),
        ("no-such-thing", "is not a model reference"),
    ):
        with pytest.raises(ModelError, match=message) as raised:
            load(reference, sweep[0])
        assert "\n" not in str(raised.value)


def test_a_model_whose_files_never_reached_the_store_or_a_silent_server_is_one_paragraph(sweep, tmp_path, tracking_env):
    """A logged model without its weights (a run whose artifacts stayed on a lent machine) and a store that does
    not answer: said as such, not as a traceback or as "not found"."""
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    from cifar_exp.errors import ModelError, TrackingError
    from cifar_exp.model_ref import load

    run = MlflowClient(sweep[0]).get_run(sweep[2][0].info.run_id)
    model_uri = f"models:/{run.outputs.model_outputs[0].model_id}"
    folder = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path), tracking_uri=sweep[0]))
    (weights,) = folder.rglob("model.keras")
    weights.unlink()
    with pytest.raises(ModelError, match="its files are incomplete") as raised:
        load(str(folder), sweep[0])
    assert "\n" not in str(raised.value)
    with pytest.raises(TrackingError, match="the MLflow tracking server does not answer"):
        load(model_uri, "http://127.0.0.1:9")


def test_evaluate_records_an_evaluation_run_linked_to_the_model(sweep, npz_dir):
    uri, _, children = sweep
    child = children[0]
    done = cifar_exp("evaluate", child.info.run_id, "data=local", f"data.path={npz_dir}", f"tracking.uri={uri}")
    assert done.returncode == 0, done.stderr[-2000:]
    client = MlflowClient(uri)
    (found,) = client.search_runs([child.info.experiment_id], "tags.`cifar_exp.role` = 'evaluation'")
    evaluation = client.get_run(found.info.run_id)  # search_runs leaves out the model inputs
    assert evaluation.info.status == "FINISHED"
    assert evaluation.data.metrics["test_accuracy"] == pytest.approx(child.data.metrics["test_accuracy"])
    (output,) = child.outputs.model_outputs
    assert [m.model_id for m in evaluation.inputs.model_inputs] == [output.model_id]
    assert [d.dataset.name for d in evaluation.inputs.dataset_inputs] == ["cifar100-test"]
    paths = {a.path for a in client.list_artifacts(evaluation.info.run_id, "plots")}
    assert "plots/confusion_matrix.png" in paths
    assert {a.path for a in client.list_artifacts(evaluation.info.run_id, "metrics")} >= {
        "metrics/per_class_report.csv",
        "metrics/confusion_matrix.csv",
    }


def test_evaluate_measures_a_flip_tta_run_as_the_run_did(tmp_path, npz_dir):
    """A run trained with trainer.tta_flip=true measured its test figures on each image and its mirror image; its
    model carries that, and evaluate on the same data gives the same figures (the loss too, which a plain
    prediction would change)."""
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    args = ["trainer.tta_flip=true", "augmentation=none", "optimizer.lr=3e-3", "trainer.epochs=3"]
    done = cli(tmp_path, *tiny(npz_dir, uri), *args)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(uri)
    (trained,) = client.search_runs([client.get_experiment_by_name("cifar_exp").experiment_id])
    evaluated = cifar_exp("evaluate", trained.info.run_id, "data=local", f"data.path={npz_dir}", f"tracking.uri={uri}")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    (found,) = client.search_runs([trained.info.experiment_id], "tags.`cifar_exp.role` = 'evaluation'")
    assert found.data.params["tta_flip"] == "True"
    for metric in ("test_loss", "test_accuracy", "test_top5_accuracy"):
        assert found.data.metrics[metric] == pytest.approx(trained.data.metrics[metric], rel=1e-6), metric


def test_an_evaluation_whose_process_died_is_retired_by_the_next_evaluate(sweep, npz_dir):
    """Its message promised that the next command on the store marks it KILLED: evaluate is such a command."""
    import socket

    uri, _, children = sweep
    client = MlflowClient(uri)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    tags = {"cifar_exp.role": "evaluation", "host": socket.gethostname(), "pid": gone.stdout.strip()}
    dead = client.create_run(children[0].info.experiment_id, tags=tags, run_name="evaluate-killed")
    done = cifar_exp("evaluate", children[0].info.run_id, "data=local", f"data.path={npz_dir}", f"tracking.uri={uri}")
    assert done.returncode == 0, done.stderr[-2000:]
    retired = client.get_run(dead.info.run_id)
    assert retired.info.status == "KILLED" and "died while RUNNING" in retired.data.tags["error"]


def evaluate_with_signals(run_id: str, uri: str, npz_dir: Path, monkeypatch) -> int:
    """``cifar-exp evaluate`` in this process with its stop-signal handlers (put back after); its exit status."""
    from cifar_exp import cli, signals

    before = {each: signal.getsignal(each) for each in signals.STOP_SIGNALS}
    monkeypatch.setattr(signals, "received", None)
    try:
        with pytest.raises(SystemExit) as ended:
            cli.main(["evaluate", run_id, "data=local", f"data.path={npz_dir}", f"tracking.uri={uri}"])
    finally:
        for each, handler in before.items():
            signal.signal(each, handler)
    return ended.value.code


def test_a_stop_during_evaluate_ends_its_evaluation_run_killed(sweep, npz_dir, monkeypatch, capsys):
    """SIGTERM, sent for real while the evaluation run records, ends it KILLED (not RUNNING) and the command
    with 128 + 15, naming the run."""
    from cifar_exp import tracking

    uri, _, children = sweep
    record = tracking.log_linked_metrics

    def record_then_stop(*args, **kwargs):
        record(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here

    monkeypatch.setattr(tracking, "log_linked_metrics", record_then_stop)
    assert evaluate_with_signals(children[1].info.run_id, uri, npz_dir, monkeypatch) == 128 + signal.SIGTERM
    client = MlflowClient(uri)
    evaluations = client.search_runs([children[1].info.experiment_id], "tags.`cifar_exp.role` = 'evaluation'")
    (stopped,) = [r for r in evaluations if r.info.status != "FINISHED" and r.info.run_name != "evaluate-killed"]
    assert stopped.info.status == "KILLED"
    assert f"evaluation run {stopped.info.run_id} is KILLED" in capsys.readouterr().err


@pytest.mark.parametrize("moment", ["while its run is marked FINISHED", "while its outcome is printed"])
def test_a_stop_after_evaluate_finished_its_run_says_so(moment, sweep, npz_dir, monkeypatch, capsys):
    """SIGTERM, sent for real once the evaluation is recorded, leaves the run FINISHED (not cut off RUNNING
    or called KILLED); the command exits 128 + 15 saying the run had finished, and a started printout ends."""
    from mlflow.tracking import MlflowClient as Client

    from cifar_exp import cli

    uri, _, children = sweep
    if moment == "while its run is marked FINISHED":
        terminate = Client.set_terminated

        def terminate_then_stop(self, run_id, status=None, end_time=None):
            terminate(self, run_id, status, end_time)
            if status == "FINISHED":
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.5)  # the signal lands here, inside the write's deferred block

        monkeypatch.setattr(Client, "set_terminated", terminate_then_stop)
    else:

        def print_then_stop(*args, **kwargs):
            print(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)

        monkeypatch.setattr(cli, "print", print_then_stop, raising=False)
    assert evaluate_with_signals(children[0].info.run_id, uri, npz_dir, monkeypatch) == 128 + signal.SIGTERM
    evaluations = MlflowClient(uri).search_runs(
        [children[0].info.experiment_id], "tags.`cifar_exp.role` = 'evaluation'", order_by=["start_time DESC"]
    )
    newest = evaluations[0]
    assert newest.info.status == "FINISHED"
    out, err = capsys.readouterr()
    assert f"run {newest.info.run_id} had FINISHED just before it" in err
    assert "KILLED" not in err
    if moment == "while its outcome is printed":
        assert f"evaluation run {newest.info.run_id}" in out  # both lines printed whole


def test_the_store_holds_dataset_inputs_and_system_metrics(sweep, npz_dir):
    from cifar_exp.data import load_dataset
    from cifar_exp.tracking.datasets import split_digest

    uri, _, children = sweep
    data = load_dataset("local", str(npz_dir))
    expected = {
        "train": split_digest(data.x_train, data.y_train),
        "validation": split_digest(data.x_val, data.y_val),
        "test": split_digest(data.x_test, data.y_test),
    }
    for child in children:
        inputs = {d.tags[0].value: d.dataset for d in child.inputs.dataset_inputs}
        assert {context: d.digest for context, d in inputs.items()} == expected
        assert {d.name for d in inputs.values()} == {"cifar100-train", "cifar100-validation", "cifar100-test"}
        assert json.loads(inputs["test"].source) == {"uri": str(npz_dir.resolve())}
        history = MlflowClient(uri).get_metric_history(child.info.run_id, "system/cpu_utilization_percentage")
        assert history and all(0 <= m.value <= 100 for m in history)
        assert "system/system_memory_usage_megabytes" in child.data.metrics


def test_mlflow_models_serve_answers_with_probabilities(sweep, tmp_path, npz_dir, tracking_env, monkeypatch):
    x = np.load(npz_dir / "test.npz")["x"][:3]
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # it runs uvicorn
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        f"models:/{MODEL_NAME}@best",
        "--env-manager",
        "local",
        "--workers",
        "1",
    ]
    with serve(command, tmp_path) as url:  # the server finds the registry through MLFLOW_TRACKING_URI
        answer = requests.post(f"{url}/invocations", json={"inputs": x.tolist()}, timeout=120)
    assert answer.ok, answer.text[:2000]
    probabilities = np.asarray(answer.json()["predictions"])
    assert probabilities.shape == (3, 100) and np.allclose(probabilities.sum(1), 1, atol=1e-4)


def test_cifar_exp_ui_prints_the_runs_table_and_the_sweeps_compare_view(sweep):
    from cifar_exp.tracking import client_for
    from cifar_exp.tracking.links import landing

    uri, parent, children = sweep
    lines = landing("http://127.0.0.1:5000", client_for(uri), "cifar_exp")
    experiment = parent.info.experiment_id
    assert lines[0] == (
        f"Runs of 'cifar_exp': http://127.0.0.1:5000/#/experiments/{experiment}/runs?workflowType=machine_learning"
    )
    assert "Compare" in lines[1]
    assert all(child.info.run_id in lines[2] for child in children) and "#/compare-runs?runs=" in lines[2]
    assert landing("http://127.0.0.1:5000", client_for(uri), "nothing_yet") == [
        "Experiments (no run in 'nothing_yet' yet): http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
    ]
