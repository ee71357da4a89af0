"""One-line summaries of errors for tags and warnings: a full disk said plainly, whatever carries it."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest
from conftest import small_disk
from mlflow.exceptions import MlflowException

from cifar_exp.errors import briefly, disk_full, no_room, server_gave_up, store_failed


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


def test_a_server_that_gave_up_is_told_from_a_name_not_found():
    assert server_gave_up(MlflowException("API request to endpoint /api/2.0/mlflow/runs/get failed with exception"))
    assert not server_gave_up(MlflowException("Registered model alias best not found.", "RESOURCE_DOES_NOT_EXIST"))


def test_a_failed_store_is_one_paragraph_saying_what_becomes_of_the_work():
    failed = MlflowException("API request to endpoint /x failed with exception\nretries exhausted")
    said = store_failed(failed, "http://h:5000", "rerun it.", doing="while the run was being recorded")
    assert said == (
        "the tracking store http://h:5000 failed while the run was being recorded "
        "(mlflow.exceptions.MlflowException: API request to endpoint /x failed with exception): rerun it."
    )
    assert store_failed(failed, None, "rerun it.").startswith("the tracking store failed (")


def test_no_room_is_said_of_a_full_disk_only(tmp_path):
    """A full filesystem (the folder itself, or the nearest existing parent of one still to make) is said; a disk
    with room, and a pseudo filesystem that has no size at all (/proc, whose writes fail for their own reason), not."""
    assert no_room(tmp_path / "not" / "made" / "yet") is None
    assert no_room(Path("/proc/cifar_exp")) is None
    with small_disk(tmp_path / "small", "1m") as small:
        with open(small / "filler", "wb") as filler, pytest.raises(OSError):
            while True:
                filler.write(b"\0" * 65536)
        said = no_room(small / "checkpoints")
    assert said is not None and said.startswith(f"the disk holding {small} is full (0 bytes free, at least ")
