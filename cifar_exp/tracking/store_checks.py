"""A tracking store checked before any work starts: a SQLite file MLflow can use (of a schema it knows, in a
writable folder on a disk with room), a server that answers as MLflow does, or a database that takes a
connection within seconds. Each refusal is one paragraph that says what to do."""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Optional

import mlflow
from filelock import FileLock

from cifar_exp import signals
from cifar_exp.config import sqlite_path
from cifar_exp.errors import TrackingError, briefly, nearest_folder, no_room
from cifar_exp.tracking.store import client_for, masked

DATABASES = ("postgresql", "mysql", "mssql")  # the database stores MLflow supports (with their drivers)


def prepare_store(uri: str, must_exist: bool = False, create: bool = True, setting: str = "tracking.uri") -> None:
    """Check the store is usable before any work: a SQLite file that is an MLflow store of a schema this
    MLflow knows, in a writable folder (an existing one for ``must_exist``, as readers need), or a server
    that answers as MLflow does. A new SQLite store is created unless ``create`` is false (a check made before
    the other inputs are: a run refused for its data then leaves no empty store behind). ``setting``: what the
    user set the URI with, as the messages name it (``tracking.uri``, a command's ``--uri``)."""
    if uri.startswith("file:") or "//" not in uri and not uri.startswith(("sqlite", "databricks")):
        raise TrackingError(
            f"{setting}={uri}: a file store (a folder of run files) is deprecated in MLflow 3 "
            "and has no model registry; use a SQLite file, e.g. "
            f"{setting}=sqlite:////path/to/mlruns/mlflow.db, or a tracking server."
        )
    db = sqlite_path(uri)
    if db is not None:
        _check_sqlite(uri, db, must_exist, create, setting)
        if create and not must_exist:
            _create_schema_once(uri, db, setting)
    elif uri.startswith(("http://", "https://")):
        bound_server_retries()
        _check_server(uri, setting)
    elif uri.split(":", 1)[0].split("+", 1)[0] in DATABASES:
        _check_database(uri, setting)
    else:
        in_memory = uri.startswith("sqlite")
        said = "an in-memory SQLite store keeps nothing" if in_memory else "not a store this harness uses"
        raise TrackingError(
            f"{setting}={masked(uri)}: {said}; give a SQLite file (sqlite:////path/to/mlflow.db), a tracking "
            f"server (http://host:5000) or a database ({', '.join(f'{d}://...' for d in DATABASES)})."
        )


# MLflow retries a REST call 7 times with exponential backoff (factor 2) and waits up to 120 s for each answer: a
# server that went away mid-run froze a training about 4 minutes per call, 12 to end its run. Bounded here unless
# the user set them (their values win): 4 retries ride out a server restart of about 30 s.
SERVER_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def bound_server_retries() -> None:
    """Set MLflow's REST retry count and timeout for this process and its workers, where the user has not."""
    for name, value in SERVER_RETRIES.items():
        os.environ.setdefault(name, value)


def _check_sqlite(uri: str, db: Path, must_exist: bool, create: bool, setting: str) -> None:
    if must_exist and not db.is_file():
        raise TrackingError(
            f"tracking store {uri}: there is no such file ({db}); give the store the runs were "
            "logged to (sqlite:///<folder>/mlflow.db)."
        )
    if db.is_file() and db.stat().st_size:
        with open(db, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise TrackingError(
                    f"tracking store {uri}: {db} is not a SQLite database; point {setting} at "
                    "an MLflow store or at a new file."
                )
        revision = _schema_revision(db)
        if revision is not None and revision not in _known_revisions():
            raise TrackingError(
                f"tracking store {uri} was written by a newer MLflow (schema revision {revision}, "
                f"unknown to the installed MLflow {mlflow.__version__}); upgrade MLflow "
                "(pip install -U mlflow) to use it, or choose another store."
            )
    if must_exist:
        return
    full = no_room(db.parent)
    if full is not None:
        raise TrackingError(
            f"{setting}={uri}: {full}, so no run could be recorded there; free some space, or give a store on "
            "another disk. Nothing was trained or logged."
        )
    try:
        if not create and not db.parent.is_dir():  # the folders to make: the nearest existing one must take them
            existing = nearest_folder(db.parent)
            if existing is None or not os.access(existing, os.W_OK | os.X_OK):
                raise PermissionError(f"cannot create folders in {existing}")
            return
        db.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=db.parent, prefix=".write_probe")
        probe.close()
    except OSError as error:
        raise TrackingError(
            f"{setting}={uri}: the folder {db.parent} is not writable ({error}); "
            f"choose another store, e.g. {setting}=sqlite:////tmp/mlruns/mlflow.db."
        ) from error
    if db.is_file():  # a writable folder can hold a read-only file: MLflow would fail only once TensorFlow loaded
        try:
            open(db, "r+b").close()
        except OSError as error:
            raise TrackingError(
                f"{setting}={uri}: the store {db} is not writable ({error}); make it writable, or choose another "
                f"store, e.g. {setting}=sqlite:////tmp/mlruns/mlflow.db."
            ) from error


def _create_schema_once(uri: str, db: Path, setting: str) -> None:
    """Let one process at a time create (or migrate) a SQLite store's schema: two sweeps or jobs starting in
    the same second on a new store would otherwise both try, and one would fail."""
    with FileLock(f"{db}.lock", timeout=120), signals.deferred():  # a migration cut in two breaks the store
        new = not db.is_file() or not db.stat().st_size
        try:
            client_for(uri).search_experiments(max_results=1)
        except Exception as error:
            if not new:
                raise
            # A new store cut short (a full disk) holds nothing but half a schema, which no later command could
            # complete ("table ... already exists"): removed, so the next command creates it afresh.
            for leftover in (db, db.with_name(f"{db.name}-journal"), db.with_name(f"{db.name}-wal")):
                leftover.unlink(missing_ok=True)
            raise TrackingError(
                f"{setting}={masked(uri)}: the new store could not be created ({briefly(error)}); the part of it "
                f"written is removed, so the same command creates it afresh once {db.parent} has space, or give "
                "another store. Nothing was trained or logged."
            ) from error


def _schema_revision(db: Path) -> Optional[str]:
    """The Alembic revision an MLflow SQLite store was migrated to (None: not an MLflow store yet)."""
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def _known_revisions() -> set[str]:
    """Every schema revision this MLflow's migrations know, read by Alembic from MLflow's own migration scripts."""
    from alembic.script import ScriptDirectory

    migrations = ScriptDirectory(str(Path(mlflow.__file__).parent / "store" / "db_migrations"))
    return {script.revision for script in migrations.walk_revisions()}


def _check_server(uri: str, setting: str) -> None:
    import requests

    try:
        answer = requests.get(
            uri.rstrip("/") + "/api/2.0/mlflow/experiments/search", params={"max_results": 1}, timeout=5
        )
        answer.raise_for_status()
    except requests.RequestException as error:
        raise TrackingError(
            f"{setting}={masked(uri)}: the MLflow tracking server does not answer ({_reason(error)}). "
            f"Start it (see the README's team setup) or {_otherwise(setting)}."
        ) from error
    try:
        body = answer.json()
    except ValueError as error:
        raise TrackingError(
            f"{setting}={masked(uri)} answers, but not as an MLflow tracking server (its answer to "
            "/api/2.0/mlflow/experiments/search is not JSON); check the host and port."
        ) from error
    if not isinstance(body, dict):
        raise TrackingError(
            f"{setting}={masked(uri)} answers, but not as an MLflow tracking server; check the host and port."
        )


def _otherwise(setting: str) -> str:
    """The way round a store that does not answer: the local default where the setting has one."""
    if setting == "tracking.uri":
        return "log locally by leaving tracking.uri at its default"
    return (
        f"give {setting} another store" if setting == "--also-from" else f"use the local store by leaving out {setting}"
    )


def _reason(error: Exception) -> str:
    """Why a request failed, as its innermost reason (``[Errno 111] Connection refused``) rather than urllib3's
    nested retry message; the message itself, masked and cut short, where it names none."""
    said = masked(" ".join(str(error).split()))
    found = re.search(r"\[(?:Errno -?\d+|SSL: \w+)\] [^'\"()]+", said)
    return found.group(0).strip() if found else said[:300]


def _check_database(uri: str, setting: str) -> None:
    """A database store (PostgreSQL, MySQL) must answer one connection within seconds: MLflow itself retries
    for about two minutes and then fails with the driver's traceback."""
    import sqlalchemy

    dialect = uri.split(":", 1)[0].split("+", 1)[0]
    shown = masked(uri)  # never print the password
    try:
        engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": 5} if dialect != "mssql" else {})
        with engine.connect():
            pass
        engine.dispose()
    except ModuleNotFoundError as error:
        raise TrackingError(
            f"{setting}={shown}: the database driver {error.name!r} is not installed; install the project "
            "with its server extra (pip install -e '.[server]') or the driver the URI names."
        ) from error
    except sqlalchemy.exc.SQLAlchemyError as error:
        first = " ".join(str(getattr(error, "orig", None) or error).split())[:300]
        raise TrackingError(
            f"{setting}={shown}: the database does not answer or refuses the connection ({first}). Start it "
            f"(see the README's team setup), check the host, port, user and database name, or {_otherwise(setting)}."
        ) from error
