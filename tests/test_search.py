"""Hyper-parameter search: the optuna sweeper's search space, every search space config, and a tiny search
through the real command line that prunes, records its parent and children, and continues when run again."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

import pytest
from conftest import all_runs, artifact_paths, cli, compose_config, tiny
from mlflow.tracking import MlflowClient
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from cifar_exp.config import PROJECT_ROOT
from cifar_exp.errors import ConfigError
from cifar_exp.validation import validate

SEARCHES = sorted(p.stem for p in (PROJECT_ROOT / "conf" / "search").glob("*.yaml"))


def test_search_space_from_hydra_sweep_syntax():
    from hydra_plugins.cifar_exp_optuna.space import search_space

    space, fixed = search_space(
        [
            "optimizer.lr=tag(log, interval(1e-4, 1e-1))",
            "dropout.dense=interval(0, 0.5)",
            "trainer.batch_size=choice(32, 64)",
            "trainer.epochs=range(2, 8, 2)",
            "trainer.steps_per_execution=tag(int, interval(1.5, 8.5))",
            "+search=fast_cnn",
            "seed=3",
            "seed=4",
            "model=choice(fast_cnn, report_cnn_bn)",
        ]
    )
    assert space == {
        "optimizer.lr": FloatDistribution(1e-4, 1e-1, log=True),
        "dropout.dense": FloatDistribution(0.0, 0.5),
        "trainer.batch_size": CategoricalDistribution((32, 64)),
        "trainer.epochs": IntDistribution(2, 6, step=2),  # Hydra's range stops before 8
        "trainer.steps_per_execution": IntDistribution(2, 8),  # the whole numbers inside
        "model": CategoricalDistribution(("fast_cnn", "report_cnn_bn")),
    }
    assert fixed == ["+search=fast_cnn", "seed=4"]


@pytest.mark.parametrize("name", SEARCHES)
def test_every_search_space_composes(name):
    cfg = compose_config(["hydra/sweeper=optuna", f"+search={name}"], return_hydra_config=True)  # as documented
    validate(cfg)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.params and sweeper.pruner._target_
    assert sweeper.storage == str(PROJECT_ROOT / "mlruns" / "optuna.journal")  # beside the default store
    assert cfg.search.trial is None


def check_search(tmp_path: Path, npz_dir: Path, *overrides: str, params: Optional[dict] = None) -> None:
    """The checks a search passes before its parent run or study exist (cifar_exp.preflight), in a Hydra context as
    the sweep's callback runs them; ``params``: entries added to the search file's ``hydra.sweeper.params``."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from cifar_exp.config import CONF_DIR, register
    from cifar_exp.preflight import check_jobs

    register()
    task = ["data.source=local", f"data.path={npz_dir}", f"hydra.sweeper.storage={tmp_path / 'o.journal'}"]
    swept = [o for o in overrides if "(" in o]  # compose refuses sweeps outside --multirun: the callback sees them here
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        fixed = [o for o in overrides if o not in swept]
        cfg = compose("config", overrides=["hydra/sweeper=optuna", *task, *fixed], return_hydra_config=True)
        cfg.hydra.overrides.task.extend(swept)
        with open_dict(cfg):
            for key, value in (params or {}).items():
                cfg.hydra.sweeper.params[key] = value
        check_jobs(cfg)


@pytest.mark.parametrize("name", SEARCHES)
def test_every_search_space_passes_the_checks_before_a_search(name, tmp_path, npz_dir):
    """report_cnn's space once held choice(null, 0.99), which Hydra's grammar refuses: the search could not start."""
    check_search(tmp_path, npz_dir, f"+search={name}")


@pytest.mark.parametrize(
    "overrides,said",
    [
        (["optimizer.nope=interval(0,1)"], "the trial with optimizer.nope=0.0 would not be a valid run"),
        (["optimizer.lr=interval(0.5,0.01)"], "optimizer.lr=interval(0.5,0.01): not a search range"),
        (["optimizer.lr=tag(log,interval(-0.1,0.5))"], "`low > 0` must hold for `log=True`"),
        (["trainer.batch_size=range(5,2)"], "trainer.batch_size=range(5,2): not a search range"),
        (["optimizer.momentum=interval(0.5,1.5)", "optimizer=sgd"], "optimizer.momentum=1.5 must be in [0, 1)"),
        (["+search=fast_cnn", "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials=0: give the number of trials"),
        (["+search=fast_cnn", "hydra.sweeper.n_jobs=0"], "hydra.sweeper.n_jobs=0: give the number of trials to run"),
        (["+search=fast_cnn", "hydra.sweeper.max_failure_rate=1.0"], "a search whose trials all fail must still stop"),
        (["+search=fast_cnn", "hydra.sweeper.metric=val_acc"], "not an epoch log a trial reports"),
        (["+search=fast_cnn", "hydra.sweeper.metric=val_loss"], "set hydra.sweeper.direction=minimize"),
        (["+search=fast_cnn", "hydra.sweeper.direction=sideways"], "set hydra.sweeper.direction=maximize"),
        (["+search=fast_cnn", "hydra/sweeper/pruner=threshold"], "Either lower or upper must be specified"),
        (["seed=3"], "there is nothing to search"),
        (["+search=fast_cnn", "hydra.sweeper.pruner.reduction_factor=1"], "reduction_factor=1: give 2 or more"),
        (["optimizer.ema=choice(null,0.99)"], "optimizer.ema=choice(null,0.99): Error parsing override"),
        (["optimizer.lr=tag(lg,interval(1e-4,1e-2))"], "tag(lg, ...) is not understood here"),
        (["trainer.batch_size=tag(log,choice(32,64))"], "tag(log, ...) is not understood here"),
        (["trainer.batch_size=tag(int,interval(2.5,2.7))"], "tag(int, interval(2.5, 2.7)) holds no whole number"),
    ],
)
def test_a_search_that_cannot_run_is_refused_before_it_starts(overrides, said, tmp_path, npz_dir):
    with pytest.raises(ConfigError) as refused:
        check_search(tmp_path, npz_dir, *overrides)
    assert said in str(refused.value) and "\n" not in str(refused.value)
    assert str(refused.value).endswith("No trial was started and nothing was logged.")


@pytest.mark.parametrize("as_path", [False, True], ids=["url", "path"])
def test_the_tracking_database_as_the_study_storage_is_refused_before_either_is_created(tmp_path, npz_dir, as_path):
    store = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    storage = store.removeprefix("sqlite:///") if as_path else store
    with pytest.raises(ConfigError, match="is the tracking store's own database"):
        check_search(tmp_path, npz_dir, "+search=fast_cnn", f"tracking.uri={store}", f"hydra.sweeper.storage={storage}")
    assert not (tmp_path / "mlruns").exists()


def test_an_sqlite_database_given_as_a_journal_path_is_named(tmp_path, npz_dir):
    import sqlite3

    database = tmp_path / "other.db"
    sqlite3.connect(database).execute("create table t (x)").connection.commit()
    with pytest.raises(ConfigError, match="is an SQLite database, not an Optuna journal file: give it as sqlite:///"):
        check_search(tmp_path, npz_dir, "+search=fast_cnn", f"hydra.sweeper.storage={database}")


def test_a_storage_that_cannot_be_opened_is_refused_and_a_missing_folder_is_made(tmp_path, npz_dir):
    with pytest.raises(ConfigError, match="hydra.sweeper.storage=/proc/x/o.journal cannot be opened"):
        check_search(tmp_path, npz_dir, "+search=fast_cnn", "hydra.sweeper.storage=/proc/x/o.journal")
    check_search(tmp_path, npz_dir, "+search=fast_cnn", f"hydra.sweeper.storage={tmp_path / 'new' / 'o.journal'}")
    assert (tmp_path / "new" / "o.journal").exists()


def test_a_named_study_of_another_space_or_objective_is_refused_before_it_starts(tmp_path, npz_dir):
    """hydra.sweeper.study_name continues a study whatever the command: a changed choice() once failed the first
    trial asked with Optuna's traceback after the parent run existed, leaving a trial RUNNING for good, and another
    objective was judged in the study's own direction (the highest val_loss best)."""
    import optuna

    from cifar_exp.search import open_storage

    study = optuna.create_study(
        study_name="mine", storage=open_storage(str(tmp_path / "o.journal")), direction="maximize"
    )
    study.set_user_attr("metric", "val_accuracy")
    study.ask({"trainer.batch_size": CategoricalDistribution((32, 64))})
    named = ("+search=fast_cnn", "hydra.sweeper.study_name=mine")
    with pytest.raises(ConfigError) as refused:
        check_search(tmp_path, npz_dir, *named, "trainer.batch_size=choice(32,128)")
    assert "the study mine drew trainer.batch_size from CategoricalDistribution(choices=(32, 64))" in str(refused.value)
    with pytest.raises(ConfigError, match=r"judges its trials by val_accuracy \(maximize\), not by val_loss"):
        check_search(tmp_path, npz_dir, *named, "hydra.sweeper.metric=val_loss", "hydra.sweeper.direction=minimize")
    check_search(tmp_path, npz_dir, *named, "trainer.batch_size=choice(32,64)")  # the same space continues
    assert len(study.get_trials()) == 1


def test_a_fixed_setting_in_the_spaces_params_is_one_the_study_keeps(tmp_path, npz_dir):
    """A search file's hydra.sweeper.params may fix a setting (trainer.epochs: 1) beside the ranges: it reaches the
    trials, not the sweep's config, so the study kept the search file's other value and a named study continued with
    it at 3 ran 3-epoch trials beside the 1-epoch ones without a word (seen 2026-11-28)."""
    import optuna

    from cifar_exp.search import FIXED_ATTR, open_storage
    from hydra_plugins.cifar_exp_optuna.space import search_space
    from hydra_plugins.cifar_exp_optuna.study import fixed_settings

    spelled = ["+search=fast_cnn", "data=local", f"data.path={npz_dir}"]
    ran = compose_config([*spelled, "trainer.epochs=1"])  # the config each trial of the study composed
    space = search_space([f"{k}={v}" for k, v in compose_config(spelled, True).hydra.sweeper.params.items()])[0]
    study = optuna.create_study(
        study_name="mine", storage=open_storage(str(tmp_path / "o.journal")), direction="maximize"
    )
    study.set_user_attr("metric", "val_accuracy")
    study.set_user_attr(FIXED_ATTR, fixed_settings(ran, space))
    named = ("+search=fast_cnn", "hydra.sweeper.study_name=mine")
    with pytest.raises(ConfigError, match=r"other fixed settings \(trainer.epochs: 1 there, 3 here\)"):
        check_search(tmp_path, npz_dir, *named, params={"trainer.epochs": 3})
    check_search(tmp_path, npz_dir, *named, params={"trainer.epochs": 1})  # what its trials ran: it continues


def test_where_the_data_lies_leaves_the_study_name_and_a_study_named_before_goes_on(tmp_path):
    """Two spellings of one data folder are one study (the study keeps its settings and the runs their dataset
    fingerprint); a study named while data.path counted goes on under that name."""
    import optuna
    from omegaconf import OmegaConf

    from cifar_exp.search import open_storage
    from hydra_plugins.cifar_exp_optuna.study import default_study_name, study_name_for

    sweeper = OmegaConf.create({"metric": "val_accuracy", "direction": "maximize", "study_name": None})
    config, space = OmegaConf.create({}), {"optimizer.lr": FloatDistribution(1e-4, 1e-2, log=True)}
    storage = open_storage(str(tmp_path / "o.journal"))
    one, other = ["data.path=/x/data", "seed=1"], ["data.path=/x/../x/data", "seed=1"]
    assert study_name_for(sweeper, config, space, one, storage) == study_name_for(sweeper, config, space, other)
    assert study_name_for(sweeper, config, space, ["seed=2"]) != study_name_for(sweeper, config, space, one)
    before = default_study_name(space, one, config, ("val_accuracy", "maximize"), location=True)
    optuna.create_study(study_name=before, storage=storage)
    assert study_name_for(sweeper, config, space, one, storage) == before


def test_a_journal_record_cut_short_by_a_full_disk_is_dropped_not_fused_with_the_next(tmp_path):
    """A write that failed on a full disk left the journal's last line torn; the next command once appended after
    it, fusing both into a line no reader parses: every later command refused the storage and the study was lost."""
    import optuna

    from cifar_exp.search import open_storage

    journal = tmp_path / "o.journal"
    study = optuna.create_study(study_name="s", storage=open_storage(str(journal)))
    study.tell(study.ask(), 0.5)
    with journal.open("ab") as opened:
        opened.write(b'{"op_code":6,"worker_id":"w","tria')  # ENOSPC mid-record
    study = optuna.load_study(study_name="s", storage=open_storage(str(journal)))  # the torn line is not read
    study.tell(study.ask(), 0.7)
    again = optuna.load_study(study_name="s", storage=open_storage(str(journal)))
    assert [t.value for t in again.get_trials()] == [0.5, 0.7]
    assert journal.read_bytes().endswith(b"\n") and b'"tria{' not in journal.read_bytes()


@pytest.mark.parametrize(
    "override,said",
    [
        ("+search=fast_cnnn", "Could not find 'search/fast_cnnn'"),
        ("hydra/sweeper/pruner=medain", "Could not find 'hydra/sweeper/pruner/medain'"),
        ("hydra.sweeper.n_trials=2.5", "hydra.sweeper.n_trials"),
    ],
)
def test_a_search_command_that_does_not_compose_is_one_paragraph(override, said, tmp_path, npz_dir, store_uri):
    """Hydra composes a sweep's own config before any callback: a misspelt space or pruner was Hydra's several
    lines and exit 1."""
    search = ["--multirun", "hydra/sweeper=optuna", *tiny(npz_dir, store_uri), "optimizer.lr=interval(1e-3,1e-2)"]
    refused = cli(tmp_path, *search, override)
    assert refused.returncode == 2, refused.stderr[-2000:]
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("error: ") and said in line and line.endswith("Nothing was trained or logged.")
    assert not (tmp_path / "mlruns").exists()


def test_a_trial_is_not_pruned_after_its_last_epoch(tmp_path):
    """Hyperband once pruned a trial after epoch 4 of 4: it had trained its whole budget, yet the study marked it
    PRUNED and left it out of the best trial."""
    from types import SimpleNamespace

    from cifar_exp.callbacks import ReportToStudy

    class AlwaysPruned:
        user_attrs: dict = {}

        def report(self, value, step):
            pass

        def should_prune(self):
            return True

        def set_user_attr(self, key, value):
            self.user_attrs[key] = value

    report = ReportToStudy(AlwaysPruned(), "val_accuracy", tmp_path)
    report.set_params({"epochs": 3})
    report.set_model(SimpleNamespace(stop_training=False))
    report.on_epoch_end(2, {"val_accuracy": 0.5})
    assert report.pruned_at is None and not report.model.stop_training
    report.on_epoch_end(1, {"val_accuracy": 0.5})
    assert report.pruned_at == 2 and report.model.stop_training


def study_trials(storage: Path):
    import optuna

    from cifar_exp.search import open_storage

    backend = open_storage(str(storage))
    (name,) = [s.study_name for s in optuna.get_all_study_summaries(backend)]
    return optuna.load_study(study_name=name, storage=backend).get_trials()


def test_best_moves_to_another_studys_model_only_if_it_scored_as_high(tmp_path, store_uri):
    """Two searches over the same keys register under one name: within a study @best follows the study's best
    trial; from another study's model it moves only to one that scored at least its test accuracy."""
    import yaml
    from test_registry import run_with_model

    from cifar_exp.tracking.registry import alias_run
    from cifar_exp.tracking.run import tracked_run
    from cifar_exp.tracking.search_results import record_search

    client = MlflowClient(store_uri, registry_uri=store_uri)

    def trial(study: str, number: int, accuracy: float) -> str:
        run_id = run_with_model(store_uri, accuracy)
        client.log_param(run_id, "search.study", study)
        client.log_param(run_id, "search.trial", str(number))
        return run_id

    def search(study: str, number: int) -> str:
        folder = tmp_path / f"{study}-{number}"
        folder.mkdir(exist_ok=True)
        best = {"number": number, "value": 4.5, "command": "python -m cifar_exp"}
        summary = {"study": study, "metric": "val_loss", "trials": {"complete": 1}, "best": best}
        (folder / "best_trial.yaml").write_text(yaml.safe_dump(summary))
        with tracked_run(store_uri, "t", f"search-{study}") as parent:
            pass
        record_search(store_uri, parent.run_id, folder, register_as="m")
        return client.get_run(parent.run_id).data.tags["registered_model"]

    a0, b0, a1 = trial("a", 0, 0.5), trial("b", 0, 0.3), trial("a", 1, 0.2)
    assert search("a", 0) == "models:/m@best (version 1)" and alias_run(client, "m") == a0
    assert "@best stays" in search("b", 0) and alias_run(client, "m") == a0  # another study, lower: stays
    assert search("a", 1).startswith("models:/m@best") and alias_run(client, "m") == a1  # its own study's best
    assert search("b", 0).startswith("models:/m@best") and alias_run(client, "m") == b0  # 0.3 >= 0.2: moves


def test_a_study_of_the_same_name_in_another_storage_is_another_study(tmp_path, store_uri):
    """The same search command with another storage (another tracking store or hydra.sweeper.storage) makes a study
    of the same name there: its best trial's run was looked up by name and number alone, so the search registered
    the other storage's trial 0, and took @best from the other study's better model (seen 2026-11-28)."""
    import yaml
    from test_registry import run_with_model

    from cifar_exp.tracking.registry import alias_run
    from cifar_exp.tracking.run import tracked_run
    from cifar_exp.tracking.search_results import record_search

    client = MlflowClient(store_uri, registry_uri=store_uri)

    def trial(storage: str, accuracy: float) -> str:
        run_id = run_with_model(store_uri, accuracy)
        for key, value in (("search.study", "a"), ("search.storage", storage), ("search.trial", "0")):
            client.log_param(run_id, key, value)
        return run_id

    def search(storage: str) -> dict:
        folder = tmp_path / Path(storage).stem
        folder.mkdir(exist_ok=True)
        best = {"number": 0, "value": 0.5, "command": "python -m cifar_exp"}
        summary = {"study": "a", "metric": "val_accuracy", "storage": storage, "trials": {"complete": 1}, "best": best}
        (folder / "best_trial.yaml").write_text(yaml.safe_dump(summary))
        with tracked_run(store_uri, "t", "search-a") as parent:
            pass
        record_search(store_uri, parent.run_id, folder, register_as="m")
        return client.get_run(parent.run_id).data.tags

    first = trial("/x/one.journal", 0.5)
    assert search("/x/one.journal")["best_run_id"] == first and alias_run(client, "m") == first
    second = trial("/x/two.journal", 0.2)
    tags = search("/x/two.journal")
    assert tags["best_run_id"] == second and "@best stays" in tags["registered_model"]  # another study, lower
    assert alias_run(client, "m") == first
    assert search("/x/one.journal")["best_run_id"] == first  # not the other storage's trial 0


def test_tiny_search_prunes_records_and_resumes(tmp_path, npz_dir, store_uri):
    # A pruner that must prune: ThresholdPruner(lower=2) stops every trial that reaches a second epoch, so the
    # trials drawn with 3 epochs are pruned after epoch 2 and those with 1 epoch complete.
    search = [
        "--multirun",
        "hydra/sweeper=optuna",
        *tiny(npz_dir, store_uri),
        "data.train_size=200",
        "augmentation=none",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=0",
        "hydra/sweeper/pruner=threshold",
        "hydra.sweeper.pruner.lower=2.0",
        "hydra.sweeper.pruner.n_warmup_steps=1",
        "trainer.epochs=choice(1,3)",
        "optimizer.lr=tag(log,interval(1e-4,1e-2))",
    ]
    first = cli(tmp_path, *search, "hydra.sweeper.n_trials=3", timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    storage = Path(store_uri.removeprefix("sqlite:///")).parent / "optuna.journal"
    assert len(study_trials(storage)) == 3

    again = cli(tmp_path, *search, "hydra.sweeper.n_trials=4", timeout=600)  # the same study goes on to 4 trials
    assert again.returncode == 0, again.stderr[-3000:]
    trials = study_trials(storage)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    states = {t.number: t.state.name for t in trials}
    assert {"PRUNED", "COMPLETE"} <= set(states.values()), states
    for trial in trials:
        if trial.state.name == "PRUNED":
            assert trial.params["trainer.epochs"] == 3 and trial.user_attrs["pruned_at_epoch"] == 2
            assert sorted(trial.intermediate_values) == [0, 1]
        else:
            assert trial.params["trainer.epochs"] == 1 and trial.value == trial.intermediate_values[0]
        assert 0 <= trial.user_attrs["test_accuracy"] <= 1

    runs = all_runs(store_uri)
    parents = sorted((r for r in runs if r.data.tags.get("cifar_exp.role") == "sweep"), key=lambda r: r.info.start_time)
    assert len(parents) == 2 and all(p.info.status == "FINISHED" for p in parents)
    children = [r for r in runs if r.data.tags.get("cifar_exp.role") != "sweep"]
    assert sorted(int(c.data.params["search.trial"]) for c in children) == [0, 1, 2, 3]
    for child in children:
        trial = trials[int(child.data.params["search.trial"])]
        assert child.info.status == "FINISHED"  # a pruned trial is not a failure
        assert child.info.run_name.endswith(f"-trial{trial.number}")
        assert Path(trial.user_attrs["checkpoint_folder"]).name == child.info.run_id  # removed if its search dies
        assert child.data.tags["mlflow.parentRunId"] == parents[trial.number // 3].info.run_id
        if trial.state.name == "PRUNED":
            assert child.data.tags["pruned"] == "2" and child.data.metrics["epochs_run"] == 2
            assert "stopped_early" not in child.data.tags
        else:
            assert "pruned" not in child.data.tags
        assert child.data.metrics["test_accuracy"] == pytest.approx(trial.user_attrs["test_accuracy"])

    parent = parents[1]
    best = max((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    tags = parent.data.tags
    assert tags["best_trial"] == str(best.number) and tags["search_trials"].endswith("pruned")
    command = shlex.split(tags["best_command"])
    assert command[:3] == ["python", "-m", "cifar_exp"] and "trainer.epochs=1" in command
    assert f"optimizer.lr={best.params['optimizer.lr']!r}" in command
    assert not any(arg.startswith(("search.", "hydra")) or "choice(" in arg for arg in command)
    assert parent.data.metrics["best_trial_value"] == pytest.approx(best.value)
    assert f"Best trial {best.number}" in tags["mlflow.note.content"]
    assert {
        "optuna/best_trial.yaml",
        "optuna/trials.csv",
        "optuna/optimization_history.png",
        "optuna/param_importances.png",
        "optuna/intermediate_values.png",
    } <= artifact_paths(MlflowClient(store_uri), parent.info.run_id)

    # @best is the trial the study judged best (validation), not the child with the best test accuracy
    client = MlflowClient(store_uri)
    registered = tags["registered_model"].split("@")[0].removeprefix("models:/")
    best_run = client.get_model_version_by_alias(registered, "best").run_id
    assert client.get_run(best_run).data.params["search.trial"] == str(best.number)
    assert tags["best_run_id"] == best_run and "best_test_accuracy" not in parent.data.metrics  # one best, the study's

    client.delete_registered_model(registered)  # as if a stop during the results phase had left it unregistered
    done = cli(tmp_path, *search, "hydra.sweeper.n_trials=4", timeout=600)  # nothing left to do
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(study_trials(storage)) == 4
    assert client.get_model_version_by_alias(registered, "best").run_id == best_run  # the re-run registers it

    # The study by name, under another fixed setting (as an edited search file would give): refused before any work
    name = f"hydra.sweeper.study_name={tags['study']}"
    other = cli(tmp_path, *[o for o in search if o != "data.train_size=200"], "data.train_size=300", name)
    assert (
        other.returncode == 2
        and "ran its trials with other fixed settings (data.train_size: 200 there, 300 here)" in (other.stderr)
    ), other.stderr[-3000:]
    assert len(study_trials(storage)) == 4 and len(all_runs(store_uri)) == len(runs) + 1  # the run above, no other


def test_a_search_stopped_mid_trial_fails_the_trial_and_says_it_is_not_continued(tmp_path, npz_dir, store_uri):
    """SIGTERM while a trial trains (the basic launcher: the trial runs in the search's own process): the run is
    KILLED, the study's trial FAILED (not RUNNING for good), its checkpoint removed since no trial is continued,
    and the message says what the same command does instead."""
    import signal
    import time

    from test_faults import checkpoints, output, start, wait_for

    storage = Path(store_uri.removeprefix("sqlite:///")).parent / "optuna.journal"
    search = [
        "--multirun",
        "hydra/sweeper=optuna",
        *tiny(npz_dir, store_uri),
        "data.train_size=200",
        "augmentation=none",
        "trainer.epochs=2000",  # long enough never to end before the signal
        "optimizer.lr=tag(log,interval(1e-4,1e-2))",
        "hydra.sweeper.n_trials=2",
    ]
    process = start(tmp_path, *search)
    wait_for(lambda: checkpoints(tmp_path / "mlruns" / "checkpoints"), process)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    process.wait(90)
    said = output(process)
    assert process.returncode == 143, said[-3000:]
    assert "it was trial 0 of a search, which the study marks FAILED" in said and "Traceback" not in said
    assert [t.state.name for t in study_trials(storage)] == ["FAIL"]
    assert not checkpoints(tmp_path / "mlruns" / "checkpoints")
    statuses = {r.data.tags.get("cifar_exp.role", "trial"): r.info.status for r in all_runs(store_uri)}
    assert statuses == {"sweep": "KILLED", "trial": "KILLED"}
    (parent,) = [r for r in all_runs(store_uri) if r.data.tags.get("cifar_exp.role") == "sweep"]
    assert parent.info.run_name == "search-optimizer.lr"  # a space on the command line: still a search
    assert "goes on with new trials" in parent.data.tags["mlflow.note.content"]
    assert "resume=auto" not in parent.data.tags["mlflow.note.content"]


def test_searches_sharing_a_study_train_n_trials_in_all(tmp_path, monkeypatch):
    """Two commands on one study (one machine or several): a trial another live search runs counts toward
    n_trials, so neither asks for one too many; a dead search's trial does not count (it is failed), nor one that
    never got its owner (failed once it is an hour old)."""
    import datetime
    import subprocess
    import sys

    import optuna

    from cifar_exp.search import open_storage
    from cifar_exp.tracking.environment import process_tags
    from hydra_plugins.cifar_exp_optuna import _impl as impl
    from hydra_plugins.cifar_exp_optuna._impl import OWNER_ATTR, OptunaSweeperImpl

    study = optuna.create_study(study_name="s", storage=open_storage(str(tmp_path / "o.journal")))
    study.tell(study.ask(), 0.5)
    other = study.ask()
    other.set_user_attr(OWNER_ATTR, process_tags())  # a live search's running trial
    assert OptunaSweeperImpl._taken(study) == 2
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = study.ask()
    orphan.set_user_attr(OWNER_ATTR, {**process_tags(), "pid": str(dead.pid)})
    study.ask()  # asked by a search killed before it set its owner: nobody will finish it
    assert OptunaSweeperImpl._taken(study) == 2
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE", "RUNNING", "FAIL", "RUNNING"]
    monkeypatch.setattr(impl, "OWNERLESS_AFTER", datetime.timedelta(0))  # an hour later: it stayed RUNNING for good
    assert OptunaSweeperImpl._taken(study) == 2
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE", "RUNNING", "FAIL", "FAIL"]


def test_a_search_whose_launcher_fails_leaves_no_trial_running(tmp_path):
    """An error outside the jobs (the launcher, the storage on a full disk) ends the search with that error, and
    the trials it asked for are FAILED in the study, not left RUNNING for good."""
    from types import SimpleNamespace

    import optuna
    from omegaconf import OmegaConf

    from cifar_exp.search import open_storage
    from hydra_plugins.cifar_exp_optuna._impl import OptunaSweeperImpl

    class Broken:
        def launch(self, *args, **kwargs):
            raise OSError(28, "No space left on device")

    journal = str(tmp_path / "o.journal")
    sweeper = OptunaSweeperImpl(
        OmegaConf.create({"_target_": "optuna.samplers.RandomSampler"}), None, "s", journal, "maximize",
        "val_accuracy", 3, 2, 0.5, None,
    )  # fmt: skip
    sweeper.config = OmegaConf.create(
        {"hydra": {"sweeper": {"study_name": "s", "metric": "val_accuracy", "direction": "maximize"},
                   "sweep": {"dir": str(tmp_path / "sweep")}}}
    )  # fmt: skip
    sweeper.launcher = Broken()
    loader = SimpleNamespace(load_sweep_config=lambda config, overrides: OmegaConf.create({}))  # a trial's config
    sweeper.hydra_context = SimpleNamespace(config_loader=loader)
    with pytest.raises(OSError, match="No space left"):
        sweeper.sweep(["optimizer.lr=interval(1e-4,1e-2)"])
    study = optuna.load_study(study_name="s", storage=open_storage(journal))
    assert [t.state.name for t in study.get_trials()] == ["FAIL", "FAIL"]


def test_trials_left_running_by_a_dead_search_are_failed_when_the_study_goes_on(tmp_path):
    """kill -9 cannot tell the study anything: the next search on the study fails the orphaned trials and removes
    their checkpoints, and leaves a live search's trials alone."""
    import subprocess
    import sys

    import optuna

    from cifar_exp.search import open_storage
    from cifar_exp.tracking.environment import process_tags
    from hydra_plugins.cifar_exp_optuna._impl import CHECKPOINT_ATTR, OWNER_ATTR, OptunaSweeperImpl

    study = optuna.create_study(study_name="s", storage=open_storage(str(tmp_path / "o.journal")))
    dead = subprocess.Popen([sys.executable, "-c", "import os; print(os.getpid())"], stdout=subprocess.PIPE, text=True)
    dead.wait()
    orphan, live = study.ask(), study.ask()
    orphan.set_user_attr(OWNER_ATTR, {**process_tags(), "pid": str(dead.pid)})
    live.set_user_attr(OWNER_ATTR, process_tags())
    for trial in (orphan, live):
        (tmp_path / str(trial.number)).mkdir()
        (tmp_path / str(trial.number) / "epoch_003.npz").write_bytes(b"weights")
        trial.set_user_attr(CHECKPOINT_ATTR, str(tmp_path / str(trial.number)))
    OptunaSweeperImpl._fail_orphans(study)
    assert [t.state.name for t in study.get_trials()] == ["FAIL", "RUNNING"]
    assert not (tmp_path / str(orphan.number)).exists() and (tmp_path / str(live.number) / "epoch_003.npz").exists()
