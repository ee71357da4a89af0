"""Carry runs between stores as files: ``python -m cifar_exp.records export`` writes a record of every finished
run and sweep parent to ``mlruns/records/`` (small JSON files to carry to another machine), ``... import``
recreates them in a store (see :mod:`cifar_exp.tracking.records`).

Records outlive the machine that trained them: after a GPU machine is handed back, or on a fresh checkout,
``import`` brings the runs back, so ``python -m cifar_exp.report --all`` judges them and ``make reproduce`` skips
the configurations that already FINISHED on the same data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from mlflow.tracking import MlflowClient

from cifar_exp import signals, tracking
from cifar_exp.config import PROJECT_ROOT, default_experiment, default_store_uri, options
from cifar_exp.errors import CifarExpError, ConfigError, briefly, store_failed, store_failure
from cifar_exp.tracking.record_export import export_records
from cifar_exp.tracking.record_import import import_records
from cifar_exp.tracking.records import read_records

# Beside the store, ignored by git like it: copy it off the machine to keep it.
DEFAULT_FOLDER = PROJECT_ROOT / "mlruns" / "records"
AFTERWARDS = {
    "export": "each record is written whole or not at all, so those already written stand; export again once it "
    "can be written.",
    "import": "what this import had written before it stopped is finished or written again by the next one: the same "
    "command goes on once it can.",
}


def export(uri: str, store_experiment: str, folder: Path, experiments: list[str]) -> str:
    """Write the records; what was written, said in one line."""
    unknown = [name for name in experiments if name not in options("experiment")]
    if unknown:
        raise ConfigError(
            f"unknown experiment {', '.join(unknown)}; the experiments (conf/experiment/) are "
            f"{', '.join(options('experiment'))}."
        )
    tracking.prepare_store(uri, must_exist=True, setting="--uri")
    client = tracking.client_for(uri)
    _not_deleted(client, store_experiment)
    if client.get_experiment_by_name(store_experiment) is None:
        raise ConfigError(f"no MLflow experiment {store_experiment!r} in {tracking.masked(uri)}: nothing to export.")
    written = export_records(tracking.client_for(uri), store_experiment, folder, experiments)
    kinds = sorted({path.parent.name for path in written})
    return f"{len(written)} records in {folder}" + (f" ({', '.join(kinds)})" if kinds else "")


def import_(uri: str, store_experiment: str, folder: Path) -> str:
    """Import the records; what was imported, said in one line."""
    loaded = read_records(folder)  # a folder with a bad record is refused before the store is touched
    tracking.prepare_store(uri, setting="--uri")
    client = tracking.client_for(uri)
    _not_deleted(client, store_experiment)
    tracking.retire_dead_runs(client)
    done = import_records(client, store_experiment, folder, loaded)
    said = (
        f"{len(done.imported)} runs imported from {folder} into {tracking.masked(uri)} (experiment "
        f"{store_experiment}); {len(done.updated)} imported earlier written again from their changed records; "
        f"{len(done.already)} already there"
    )
    if done.edited:
        said += (
            f"\nwarning: {len(done.edited)} of the runs written again had been changed in this store since their "
            f"import ({', '.join(done.edited)}): what was changed here is only on their replaced copies, deleted "
            "runs (`mlflow runs restore` brings one back, before `mlflow gc` purges it); change the record instead"
        )
    if done.older:
        said += (
            f"\n{len(done.older)} records in {folder} are earlier copies of those their runs were imported from "
            f"(which have their tags, params and metric steps, and more): left as they are ({', '.join(done.older)})"
        )
    if done.differ:
        said += (
            f"\nwarning: {len(done.differ)} of this store's own runs differ from their records in {folder} (an import "
            f"never changes a store's own runs): {', '.join(done.differ)}; python -m cifar_exp.records export "
            "writes the store's versions over those records"
        )
    return said


def _not_deleted(client: MlflowClient, store_experiment: str) -> None:
    """A deleted MLflow experiment takes no runs and shows none: say how to get it back."""
    found = client.get_experiment_by_name(store_experiment)
    if found is not None and found.lifecycle_stage == "deleted":
        raise ConfigError(
            f"MLflow experiment {store_experiment!r} (id {found.experiment_id}) is deleted in this store; restore it "
            f"(mlflow experiments restore --experiment-id {found.experiment_id}, with MLFLOW_TRACKING_URI set to the "
            "store) or name another with --store-experiment."
        )


def main(argv: Optional[list[str]] = None) -> None:
    """``python -m cifar_exp.records export|import``: errors as one paragraph, exit status 2."""
    parser = argparse.ArgumentParser(
        prog="python -m cifar_exp.records", description=" ".join(__doc__.split("\n\n")[0].split())
    )
    parser.add_argument("action", choices=("export", "import"))
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER, help=f"default: {DEFAULT_FOLDER}")
    parser.add_argument(
        "--uri", "--tracking-uri", default=default_store_uri(), help="tracking URI (default: the project's store)"
    )
    parser.add_argument("--store-experiment", default=default_experiment(), help="MLflow experiment of the runs")
    parser.add_argument(
        "--experiment", action="append", default=[], help="export: only this report experiment's runs (repeatable)"
    )
    args = parser.parse_intermixed_args(argv)
    signals.install()
    try:
        if args.action == "export":
            said = export(args.uri, args.store_experiment, args.folder, args.experiment)
        else:
            if args.experiment:
                parser.error("--experiment chooses what to export; import brings every record in the folder")
            said = import_(args.uri, args.store_experiment, args.folder)
    except CifarExpError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except signals.Stopped as stop:
        print(f"error: {stop.explain()[:-1]}; {AFTERWARDS[args.action]}", file=sys.stderr)
        signals.exit(stop.exit_status)
    except OSError as error:  # the records folder: not writable or readable, or the disk is full
        print(f"error: {args.folder}: {briefly(error)}; {AFTERWARDS[args.action]}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:
        failed = store_failure(error)
        if failed is None:
            raise
        print(f"error: {store_failed(failed, tracking.masked(args.uri), AFTERWARDS[args.action])}", file=sys.stderr)
        sys.exit(2)
    print(said)


if __name__ == "__main__":
    main()
