"""What makes a run reproducible and its owner findable: code version, library versions, the command line,
and the process that owns a RUNNING run."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Mapping

import mlflow
import psutil
from mlflow.entities import Run as MlflowRun

from cifar_exp.config import CHECKOUT


def _git(*args: str) -> str:
    """Git's answer about the package's own checkout; "" for an installed wheel (run from inside another
    repository, git would answer about that one) or where git cannot answer."""
    if CHECKOUT is None:
        return ""
    try:
        done = subprocess.run(["git", *args], cwd=CHECKOUT, capture_output=True, text=True, timeout=10)
        return done.stdout.strip() if done.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def _distribution_version(name: str) -> str:
    """The installed version of a distribution, or "unknown" (e.g. TensorFlow installed as tensorflow-cpu)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _tensorflow_version() -> str:
    try:
        import tensorflow as tf
    except ImportError:
        return "not installed"
    return tf.__version__


@functools.cache
def code_version() -> tuple[str, str]:
    """The commit and whether tracked files differ from it, read once per process: the code a process runs is
    the code it imported, so the later jobs of a sweep keep the first job's reading even if the checkout moves
    on meanwhile (a commit made while a long sweep trains)."""
    commit = _git("rev-parse", "HEAD")
    dirty = str(bool(_git("status", "--porcelain", "--untracked-files=no"))).lower() if commit else "unknown"
    return commit, dirty


def command_line() -> str:
    """The command that started this process, as a user would type it again."""
    return " ".join([Path(sys.executable).name, "-m", "cifar_exp", *sys.argv[1:]])


def environment_tags() -> dict[str, str]:
    """Code version, library versions and the command line: what is needed to rerun a run."""
    import keras

    commit, dirty = code_version()
    backend = keras.backend.backend()
    return {
        # A copy shipped without .git (a cluster node, a container) can name its commit in CIFAR_EXP_GIT_COMMIT.
        "git_commit": commit or os.environ.get("CIFAR_EXP_GIT_COMMIT") or "unknown",
        "git_dirty": dirty,
        "python_version": platform.python_version(),
        "keras_version": keras.__version__,
        "keras_backend": backend,
        "keras_backend_version": _distribution_version(backend),
        "tensorflow_version": _tensorflow_version(),
        "mlflow_version": mlflow.__version__,
        "cifar_exp_version": _distribution_version("cifar_exp"),
        "command": command_line(),
    }


def _started(pid: int) -> str:
    """When process ``pid`` started (seconds since the epoch, to the 1/100 s the kernel keeps), so a pid the
    system has since given to another process is not taken for the run's owner."""
    return f"{psutil.Process(pid).create_time():.2f}"


def process_tags() -> dict[str, str]:
    """Which process owns a RUNNING run, so a later run can tell a dead one from a live one."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": str(pid), "pid_started": _started(pid)}


def is_stale(run: MlflowRun) -> bool:
    """RUNNING, but its process (on this host) is gone: killed with -9, or the machine went down, or its pid
    now belongs to another process (one that started at another time than the run's owner)."""
    return run.info.status == "RUNNING" and process_gone(run.data.tags)


def process_gone(owner: Mapping[str, str]) -> bool:
    """Whether the process :func:`process_tags` described is gone (on this host; another host's cannot be told)."""
    if owner.get("host") != socket.gethostname():
        return False
    try:
        pid = int(owner.get("pid", "0"))
    except ValueError:
        return False
    if pid <= 0:
        return True
    try:
        started = _started(pid)
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False
    recorded = owner.get("pid_started")
    return recorded is not None and recorded != started
