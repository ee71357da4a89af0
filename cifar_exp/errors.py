"""The errors a user can fix; each message names the setting and the fix, and is shown as one paragraph."""

import dataclasses
import difflib
import errno
import re
import shutil
import traceback
from pathlib import Path
from typing import Optional

from hydra.errors import CompactHydraException


class CifarExpError(Exception):
    """Base of the errors caused by the user's input or the run's data, not by a bug."""


class ConfigError(CifarExpError, ValueError):
    """A config value that is out of range or inconsistent."""


class DataError(CifarExpError, ValueError):
    """A dataset that is missing, unreadable or malformed."""


class TrackingError(CifarExpError, RuntimeError):
    """The tracking store cannot be reached or written."""


class TrainingDiverged(CifarExpError, RuntimeError):
    """The loss became NaN or infinite (TerminateOnNaN stopped the run)."""


class ReportError(CifarExpError, RuntimeError):
    """Nothing to report on: no such experiment, sweep or finished run."""


class CheckpointError(CifarExpError, RuntimeError):
    """A checkpoint that cannot be read back (truncated by a full disk, damaged by a copy)."""


class ModelError(CifarExpError, ValueError):
    """A model reference that resolves to nothing usable: no such run, file or registered model, or a model
    that does not take 32x32 RGB images."""


class InputError(CifarExpError, ValueError):
    """An image or array handed to ``cifar-exp predict`` that cannot be read as RGB images."""


def one_paragraph(error: BaseException) -> str:
    """Hydra's composition error (several lines, then its config search path) as one paragraph, the path left
    out, and with the cause Hydra wraps (a wrong type's message) when its own text does not say it, without
    OmegaConf's internals (``full_key: ... object_type=...``). A misspelt option or key gets the closest real one."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    text = str(error)
    options = re.search(r"Could not find '([^']*)/([^'/]+)'\s+Available options in '[^']+':\n((?:\t\S+\n?)+)", text)
    said = _without_internals(" ".join(text.split()).split(" Config search path:")[0]).rstrip(".")
    # What + adds, nothing reads; but Hydra's own open settings (hydra.job.env_set) do take + keys, as Hydra says.
    said = re.sub(r"\. To append to your config use \+(?!hydra\.)\S+", ": not a setting", said)
    if options:
        group, typed, choices = options.group(1), options.group(2), options.group(3).split()
        said = re.sub(
            r"' Available options in '([^']+)': .*", rf"'. Available options in '\1': {', '.join(choices)}", said
        )
        if meant := closest(typed, choices):
            said += f"; the closest option is {group}={meant}"
    cause = error.__cause__
    if cause is not None:
        cause_said = _without_internals(" ".join(str(cause).split())).rstrip(".")
        if cause_said[:60] not in said:
            said += f" ({cause_said})"
    for source in (error, cause):
        key, full_key = getattr(source, "key", None), getattr(source, "full_key", None)
        if (
            isinstance(source, (ConfigAttributeError, ConfigKeyError))
            and isinstance(key, str)
            and isinstance(full_key, str)
        ):
            if meant := closest(key, _fields(getattr(source, "object_type", None))):
                said += (
                    f"; the closest setting is {full_key.rpartition('.')[0] + '.' if '.' in full_key else ''}{meant}"
                )
            break
    return said


def _without_internals(said: str) -> str:
    """OmegaConf's error text less the node it appends (``full_key: ... reference_type=... object_type=...``)."""
    return re.sub(r"\s*full_key: \S*", "", re.sub(r"\s*full_key: .*? object_type=\S+", "", said))


def closest(word: str, choices: list[str]) -> Optional[str]:
    """The choice a misspelt ``word`` most likely meant, whatever its case, if any is close (difflib's ratio of at
    least 0.6)."""
    by_lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1)
    return by_lower[close[0]] if close else None


def _fields(config_class: object) -> list[str]:
    """The settings of a structured config (a dataclass), as OmegaConf names the one a key was not found in."""
    return [f.name for f in dataclasses.fields(config_class)] if dataclasses.is_dataclass(config_class) else []


class JobFailed(CompactHydraException):
    """A job of a multirun that ended with a user error (``said``, one paragraph). The job's callback says it as
    the job fails; Hydra, which raises the first failed job's error after the last job, prints only this line
    for it (a compact Hydra error), not a traceback."""

    def __init__(self, said: str, job_num: int):
        self.said, self.job_num = said, job_num
        super().__init__(
            f"error: job #{job_num} failed (said above); the sweep's parent run lists every failed job and why."
        )

    def __reduce__(self) -> tuple[type, tuple[str, int]]:
        """Rebuilt from its own arguments: a joblib worker sends the job's error back to the sweep pickled."""
        return JobFailed, (self.said, self.job_num)


FULL_DISK_SAYS = ("database or disk is full", "No space left on device")


def disk_full(error: BaseException) -> Optional[BaseException]:
    """The error in ``error``'s chain that says the disk is full, whether it came as an OSError, through the SQLite
    store ("database or disk is full") or through TensorFlow's file writers ("No space left on device")."""
    seen: Optional[BaseException] = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return seen
        if any(text in str(seen) for text in FULL_DISK_SAYS):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


MIN_FREE_BYTES = 1 << 20  # under a MiB free, a run's first records (its params, an epoch's metrics) may not fit


def nearest_folder(path: Path) -> Optional[Path]:
    """``path`` if it is a folder, else its nearest parent that is: where a folder still to be made would go."""
    return next((p for p in (path, *path.parents) if p.is_dir()), None)


def no_room(folder: Path) -> Optional[str]:
    """What to say when the disk that holds ``folder`` (or would: its nearest existing parent) is full, else None:
    a full disk said before the data is loaded and TensorFlow started, not by the run's first write."""
    existing = nearest_folder(folder)
    if existing is None:
        return None
    usage = shutil.disk_usage(existing)
    if usage.free >= MIN_FREE_BYTES or not usage.total:  # no size at all: /proc, /sys, whose writes say what's wrong
        return None
    return f"the disk holding {existing} is full ({usage.free} bytes free, at least {MIN_FREE_BYTES} needed)"


def briefly(error: BaseException) -> str:
    """One line for a tag or a warning: ``no space left on the device (...)`` when that is the cause, else the
    error's type and first line. A store's error carries SQLAlchemy's statement and parameters on further lines,
    and its first line may be a remark about autoflush: the line that says the disk is full is kept instead."""
    full = disk_full(error)
    if full is None:
        return "".join(traceback.format_exception_only(error)).strip().splitlines()[0]
    lines = [line.strip() for line in str(full).splitlines() if any(text in line for text in FULL_DISK_SAYS)]
    return f"no space left on the device ({(lines or [' '.join(str(full).split())])[0][:300]})"


def store_failure(error: BaseException) -> Optional[BaseException]:
    """The error in ``error``'s chain that came from the tracking store rather than from the work: a server that
    stopped answering or refused a request (MLflow's REST client, requests), or a database that cannot be
    written (SQLAlchemy)."""
    from mlflow.exceptions import MlflowException
    from requests import RequestException

    seen: Optional[BaseException] = error
    while seen is not None:
        if isinstance(seen, (MlflowException, RequestException)) or type(seen).__module__.startswith("sqlalchemy"):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def server_gave_up(error: BaseException) -> bool:
    """Whether MLflow's REST client gave up on the server (no answer, or answers that were errors) rather than the
    server answering that something does not exist."""
    return "API request to" in str(error)


def store_failed(failed: BaseException, uri: Optional[str], afterwards: str, doing: str = "") -> str:
    """The one paragraph for a tracking store that failed mid-command (see :func:`store_failure`): what failed
    (``doing``: while what), why, and what becomes of the work (``afterwards``)."""
    store = f"the tracking store {uri}" if uri else "the tracking store"
    return f"{store} failed{f' {doing}' if doing else ''} ({briefly(failed)[:400]}): {afterwards}"
