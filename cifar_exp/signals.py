"""Polite stop signals (SIGTERM from SLURM, Kubernetes, ``timeout`` or systemd; SIGHUP when the terminal goes;
SIGINT from Ctrl-C) turned into one exception, so every run and sweep in the process ends with its reason
instead of dying RUNNING. SIGKILL cannot be caught: the next command on the store notices that run instead.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Iterator, Optional

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Stopped(KeyboardInterrupt):
    """Raised in the main thread when a stop signal arrives; ``details`` gathers what the user needs to know."""

    def __init__(self, signum: int):
        self.signum = signum
        self.details: list[str] = []
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_status(self) -> int:
        """The shell's convention for death by a signal: 128 + its number."""
        return 128 + self.signum

    def explain(self) -> str:
        return "; ".join([str(self), *self.details]) + "."


received: Optional[Stopped] = None  # the stop this process received, for the sweep parent's record
_depth = 0  # how many deferred() blocks the main thread is inside
_pending: Optional[int] = None  # a stop signal that arrived inside one, raised when the outermost ends


@contextmanager
def deferred() -> Iterator[None]:
    """Hold a stop signal arriving inside the block until the block ends, then raise it.

    For calls that must not be cut in the middle: a tracking-store transaction broken off by an exception
    keeps its SQLite lock, and the write that marks the run KILLED then waits for that lock and fails.
    """
    global _depth, _pending
    if threading.current_thread() is not threading.main_thread():  # signals only ever interrupt the main thread
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending is not None:
            signum, _pending = _pending, None
            _stop(signum)


def _raise(signum: int, frame: Optional[FrameType]) -> None:
    global _pending
    if _depth:
        _pending = _pending or signum
        return
    _stop(signum)


def _stop(signum: int) -> None:
    global received
    for each in STOP_SIGNALS:  # a second signal must not interrupt the bookkeeping of the first
        signal.signal(each, signal.SIG_IGN)
    _forward(signum)
    received = Stopped(signum)
    raise received


def _forward(signum: int) -> None:
    """Pass the signal on to this process's children (a joblib launcher's workers run jobs of their own), so
    each ends its run as this process does; a sender such as Kubernetes or ``timeout`` signals one process only."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.send_signal(signum)
        except psutil.Error:
            pass
    psutil.wait_procs(children, timeout=30)  # let each record its end before this process closes the sweep


def install() -> None:
    """Raise :class:`Stopped` on every polite stop signal; only possible (and only needed) in the main thread."""
    if threading.current_thread() is threading.main_thread():
        for each in STOP_SIGNALS:
            signal.signal(each, _raise)
