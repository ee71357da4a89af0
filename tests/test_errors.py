"""One-line summaries of errors for tags and warnings: a full disk said plainly, whatever carries it."""

from __future__ import annotations

import errno
import sqlite3

import pytest
from mlflow.exceptions import MlflowException

from cifar_exp.errors import briefly, disk_full


def chained(outer: Exception, cause: BaseException) -> Exception:
    try:
        raise outer from cause
    except Exception as error:
        return error


def test_a_full_database_is_said_in_one_line_without_the_sql():
    """MLflow wraps SQLAlchemy's error, whose first line is a remark about autoflush and whose later lines
    carry the statement and its parameters."""
    statement = "(raised as a result of Query-invoked autoflush; consider using a session.no_autoflush block)\n"
    store = MlflowException(
        f"{statement}(sqlite3.OperationalError) database or disk is full\n[SQL: INSERT INTO metrics ...]\n"
        "[parameters: ('loss', 2.5, ...)]"
    )
    error = chained(store, sqlite3.OperationalError("database or disk is full"))
    said = briefly(error)
    assert said == "no space left on the device ((sqlite3.OperationalError) database or disk is full)"
    assert "\n" not in said and "SQL" not in said


def test_an_os_error_keeps_both_files_of_a_copy():
    error = chained(
        RuntimeError("could not log"), OSError(errno.ENOSPC, "No space left on device", "/tmp/a", None, "/b")
    )
    assert disk_full(error).filename2 == "/b"
    assert briefly(error) == "no space left on the device ([Errno 28] No space left on device: '/tmp/a' -> '/b')"


@pytest.mark.parametrize("error", [ValueError("bad lr\nsecond line"), KeyError("dropout")])
def test_any_other_error_is_its_type_and_first_line(error):
    assert briefly(error) in ("ValueError: bad lr", "KeyError: 'dropout'")
