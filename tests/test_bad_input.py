"""The README's bad-input table, row by row: each input gives a clear error naming the setting or file,
before training starts and before any MLflow run is created."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_config, make_split, write_npz, write_pickles, write_tarball
from hydra.errors import ConfigCompositionException

from cifar_exp.config import PROJECT_ROOT
from cifar_exp.errors import CifarExpError
from cifar_exp.validation import validate


def _dataset(tmp_path: Path, kind: str) -> Path:
    train, test = make_split(2, 0), make_split(1, 1)
    if kind == "npz_truncated":
        folder = write_npz(tmp_path / kind, train, test)
        raw = (folder / "train.npz").read_bytes()
        (folder / "train.npz").write_bytes(raw[: len(raw) // 3])
        return folder
    if kind == "pickle_corrupt":
        folder = write_pickles(tmp_path / kind, train, test)
        (folder / "cifar-100-python" / "test").write_bytes(b"\x80\x04\x95 not a pickle")
        return folder
    if kind == "tar_truncated":
        path = write_tarball(tmp_path / kind, train, test)
        path.write_bytes(path.read_bytes()[:2000])
        return path
    if kind == "shape":
        train["x"] = np.zeros((len(train["x"]), 28, 28, 3), np.uint8)
    if kind == "labels":
        test["y_coarse"] = test["y_coarse"] + 20
    if kind == "class_missing":
        keep = train["y_fine"] != 17
        train = {k: v[keep] for k, v in train.items()}
    if kind == "missing_keys":
        folder = write_npz(tmp_path / kind, train, test)
        np.savez(folder / "test.npz", images=test["x"])
        return folder
    if kind == "float_0_1":
        train["x"] = train["x"].astype(np.float32) / 255
    if kind == "nan_pixels":
        train["x"] = train["x"].astype(np.float32)
        train["x"][0, 0, 0, 0] = np.nan
    if kind == "int64_above_255":
        train["x"] = train["x"].astype(np.int64)
        train["x"][0, 0, 0, 0] = 300
    if kind == "fractional_labels":
        train["y_fine"] = train["y_fine"].astype(np.float64) + 0.5
    if kind == "coarse_inconsistent":
        train["y_coarse"] = train["y_coarse"].copy()
        train["y_coarse"][train["y_fine"] == 3] = 7
    if kind == "empty_test":
        test = {k: v[:0] for k, v in test.items()}
    if kind == "meta_mismatch":
        folder = write_npz(tmp_path / kind, train, test)
        meta = json.loads((folder / "meta.json").read_text())
        meta["fine_to_coarse"] = [(c + 1) % 20 for c in meta["fine_to_coarse"]]
        (folder / "meta.json").write_text(json.dumps(meta))
        return folder
    if kind == "empty_folder":
        (tmp_path / kind).mkdir()
        return tmp_path / kind
    return write_npz(tmp_path / kind, train, test)


# (row name, overrides, dataset kind or None, text the error must contain)
ROWS = [
    ("unknown key", ["optimizer.nope=1"], None, "nope"),
    ("unknown top-level key", ["bogus=1"], None, "bogus"),
    ("unknown group option", ["optimizer=rmsprop"], None, "rmsprop"),
    ("wrong type (int)", ["trainer.epochs=ten"], None, "trainer.epochs"),
    ("wrong type (float)", ["optimizer.lr=fast"], None, "optimizer.lr"),
    ("zero learning rate", ["optimizer.lr=0"], None, "optimizer.lr=0.0 must be > 0"),
    ("negative learning rate", ["optimizer.lr=-1e-4"], None, "optimizer.lr=-0.0001 must be > 0"),
    ("negative decay", ["optimizer.decay=-0.05"], None, "optimizer.decay"),
    ("momentum out of range", ["optimizer=sgd", "optimizer.momentum=1.5"], None, "optimizer.momentum"),
    ("dropout rate of 1", ["dropout.conv2=1.0"], None, "dropout.conv2=1.0 must be a dropout rate in [0, 1)"),
    ("batch size < 1", ["trainer.batch_size=0"], None, "trainer.batch_size=0 must be >= 1"),
    ("zero epochs", ["trainer.epochs=0"], None, "trainer.epochs=0 must be >= 1"),
    ("verbosity Keras does not know", ["trainer.verbose=7"], None, "trainer.verbose=7 must be 0 (silent), 1"),
    (
        "negative time budget",
        ["trainer.max_minutes=-5"],
        None,
        "trainer.max_minutes=-5.0 must be null (no limit) or a positive number of minutes",
    ),
    (
        "a key added with `+`",
        ["+trainer.epoch=1"],
        None,
        "trainer.epoch is not a setting (the closest setting is trainer.epochs;",
    ),
    ("validation split of 1", ["data.val_split=1.0"], None, "data.val_split"),
    ("subset of size 0", ["data.train_size=0"], None, "data.train_size"),
    ("unknown label mode", ["data.label_mode=medium"], None, "data.label_mode='medium' is not one of fine, coarse"),
    ("unknown data source", ["data.source=s3"], None, "data.source='s3' is not one of keras, local"),
    ("local source without path", ["data.source=local", "data.path=null"], None, "needs data.path"),
    ("missing data folder", ["data.source=local", "data.path=/no/such/cifar"], None, "does not exist"),
    ("folder without a dataset", [], "empty_folder", "holds no CIFAR-100 copy"),
    ("truncated npz", [], "npz_truncated", "truncated or corrupt"),
    ("corrupt pickle", [], "pickle_corrupt", "truncated or corrupt"),
    ("truncated tar.gz", [], "tar_truncated", "truncated or corrupt"),
    ("wrong image shape", [], "shape", "expected (N, 32, 32, 3)"),
    ("labels out of range", [], "labels", "expected 0..19"),
    ("npz without the expected keys", [], "missing_keys", "lacks the keys"),
    ("a class missing from the training split", [], "class_missing", "no image of 1 fine class(es): 17 (fine17)"),
    (
        "subset too small to stratify",
        ["data.train_size=50"],
        "ok",
        "data.train_size=50 is fewer images than the 100 classes",
    ),
    ("tracking server unreachable", ["tracking.uri=http://127.0.0.1:9"], "ok", "tracking server does not answer"),
    (
        "database store unreachable",
        ["tracking.uri=postgresql://u:pw@127.0.0.1:9/db"],
        "ok",
        "tracking.uri=postgresql://u:***@127.0.0.1:9/db: the database does not answer",
    ),
    ("store not writable", ["tracking.uri=sqlite:////proc/cifar_exp/mlflow.db"], "ok", "not writable"),
    ("a store scheme MLflow may know but this harness does not", ["tracking.uri=foo://bar"], "ok", "not a store this"),
    ("an in-memory SQLite store", ["tracking.uri=sqlite://"], "ok", "an in-memory SQLite store keeps nothing"),
    (
        "tracking server with a password, unreachable",
        ["tracking.uri=http://u:secret@127.0.0.1:9"],
        "ok",
        "tracking.uri=http://u:***@127.0.0.1:9: the MLflow tracking server does not answer",
    ),
    ("resume neither auto nor a run id", ["resume=autoo"], "ok", "resume='autoo' must be null, auto"),
    (
        "resume of an unknown run",
        ["resume=ffffffffffffffffffffffffffffffff"],
        "ok",
        "resume=ffffffffffffffffffffffffffffffff: no such run",
    ),
    ("float images scaled to 0..1", [], "float_0_1", "look scaled to [0, 1]: multiply by 255"),
    ("NaN pixels", [], "nan_pixels", "hold 1 NaN or infinite values"),
    ("int64 pixels above 255", [], "int64_above_255", "outside 0..255"),
    ("fractional labels", [], "fractional_labels", "y_fine (float64) are not whole class numbers"),
    (
        "superclass labels that contradict the fine labels",
        [],
        "coarse_inconsistent",
        "fine class 3 is labelled with superclasses [3, 7]",
    ),
    ("meta.json that does not describe the labels", [], "meta_mismatch", "does not describe these labels"),
    ("an empty test set", [], "empty_test", "the test split holds no images"),
    (
        "a split that leaves one training image",
        ["data.train_size=100", "data.val_split=0.99"],
        "ok",
        "data.val_split=0.99",
    ),
    (
        "momentum given to Adam",
        ["optimizer.momentum=0.9"],
        None,
        "optimizer.momentum=0.9 must be 0.0 for optimizer=adam",
    ),
    ("Nesterov given to Adam", ["optimizer.nesterov=true"], None, "optimizer.nesterov=True must be False"),
    ("seed out of range", ["seed=4294967296"], None, "seed=4294967296 must be in [0, 2**32 - 1]"),
    ("negative seed", ["seed=-1"], None, "seed=-1 must be in [0, 2**32 - 1]"),
    ("empty experiment name", ["tracking.experiment=''"], None, "tracking.experiment='' must be a non-empty"),
    ("file store", ["tracking.uri=file:///tmp/cifar_exp_file_store"], "ok", "a file store"),
    ("a misspelt option or key", ["dropout=WINNIG"], None, "Could not find 'dropout/WINNIG'"),
    (
        "an interpolation that resolves to nothing, in a run or any job of a grid",
        ["trainer.epochs=${oops}"],
        None,
        "trainer.epochs: Interpolation key 'oops' not found",
    ),
    (
        "checkpoint folder not writable",
        ["trainer.checkpoint_dir=/proc/cifar_exp"],
        "ok",
        "trainer.checkpoint_dir=/proc/cifar_exp is not writable",
    ),
]


@pytest.mark.parametrize("name,overrides,dataset,message", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_row(name, overrides, dataset, message, tmp_path, store_uri):
    from cifar_exp.train import train

    base = [f"tracking.uri={store_uri}", "trainer.epochs=1", "trainer.verbose=0"]
    if dataset:
        base += ["data.source=local", f"data.path={_dataset(tmp_path, dataset)}"]
    try:
        cfg = compose_config(base + overrides)
        validate(cfg)
        train(cfg)
    except ConfigCompositionException as error:
        assert message in f"{error} {error.__cause__}"
    except CifarExpError as error:
        assert message in str(error)
    else:
        pytest.fail(f"{name}: no error")
    db = Path(store_uri.removeprefix("sqlite:///"))
    if db.exists():
        from mlflow.tracking import MlflowClient

        client = MlflowClient(store_uri)
        assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_the_table_has_at_least_twenty_rows_and_is_in_the_readme():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert len(ROWS) >= 20
    for name, *_ in ROWS:
        assert f"| {name} |" in readme, name
