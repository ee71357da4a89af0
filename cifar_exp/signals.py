"""Polite stop signals (SIGTERM from SLURM, Kubernetes, ``timeout`` or systemd; SIGHUP when the terminal goes;
SIGINT from Ctrl-C) turned into one exception, so every run and sweep in the process ends with its reason
instead of dying RUNNING. SIGKILL cannot be caught: the next command on the store notices that run instead.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Any, Callable, Iterator, NoReturn, Optional

import psutil

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Stopped(KeyboardInterrupt):
    """Raised in the main thread when a stop signal arrives; ``details`` gathers what the user needs to know."""

    def __init__(self, signum: int):
        self.signum = signum
        self.details: list[str] = []
        self.run_id: Optional[str] = None  # the innermost run it ended (set by tracking), to name in the message
        self.finished_run_id: Optional[str] = None  # a run it arrived just after, already recorded FINISHED
        self.unmarked_run_id: Optional[str] = None  # a run the store could not mark KILLED (the next command will)
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_status(self) -> int:
        """The shell's convention for death by a signal: 128 + its number."""
        return 128 + self.signum

    @property
    def run_state(self) -> str:
        """What became of the run it ended, as said to the user: marked KILLED now, or by the next command."""
        return "is KILLED" if self.unmarked_run_id != self.run_id else "is marked KILLED by the next command"

    def explain(self) -> str:
        """The stop and what the user needs to know of it, in one sentence."""
        return "; ".join([str(self), *self.details]) + "."


received: Optional[Stopped] = None  # the stop this process received, for the sweep parent's record
_depth = 0  # how many deferred() blocks the main thread is inside
_watching = False  # whether watch_parent's thread runs in this process
_pending: Optional[int] = None  # a stop signal that arrived inside one, raised when the outermost ends
_python_unraisable: Callable[[Any], None] = sys.unraisablehook  # where exceptions not ours to resend go


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
    workers = _workers()
    if received is None and any(_in_a_pool(w) for w in workers):
        # A joblib launcher's workers: each ends its job's run and returns, and skips the jobs still queued, so
        # the launcher returns and the sweep ends as stopped (see draining). Raised here instead, the stop would
        # make joblib kill the workers while they record their runs' end. A second signal stops at once.
        received = Stopped(signum)
        _send(workers, signum)
        return
    for each in STOP_SIGNALS:  # a second signal must not interrupt the bookkeeping of the first
        signal.signal(each, _ignore)  # not SIG_IGN: a signal already on its way would raise OSError ("race condition")
    if received is None:
        _send(workers, signum)
        psutil.wait_procs(workers, timeout=30)  # let each record its end before this process closes the sweep
    received = received or Stopped(signum)
    raise received


def watch_parent(every: float = 2.0) -> None:
    """In a pool worker: end with the process that started it. A parent killed with -9 (or by the OOM killer)
    cannot pass a stop on, and the pool's workers would go on training and writing to the store on their own:
    a worker in a job stops as if sent SIGTERM (its run ends KILLED, its checkpoint kept for ``resume=auto``),
    an idle one exits. Started once per process; a daemon thread."""
    global _watching
    parent = multiprocessing.parent_process()  # recorded at the worker's start: by now it may be gone already
    if _watching or parent is None or parent.pid is None:
        return
    _watching = True
    pid = parent.pid
    try:
        started: Optional[float] = psutil.Process(pid).create_time()
    except psutil.Error:
        started = None

    def alive() -> bool:  # the same process: its pid may have gone to another one since
        try:
            return started is not None and psutil.Process(pid).create_time() == started
        except psutil.Error:
            return False

    def watch() -> None:
        while alive():
            threading.Event().wait(every)
        if signal.getsignal(signal.SIGTERM) is _raise:  # in a job: end it as a stop does
            os.kill(os.getpid(), signal.SIGTERM)
            while signal.getsignal(signal.SIGTERM) is _raise:  # until the job has recorded its end
                threading.Event().wait(0.5)
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=watch, name="cifar_exp-watch-parent", daemon=True).start()


def draining() -> bool:
    """True once a stop reached a process whose pool workers are ending their jobs: it then lets its launcher
    return, starts nothing new, and ends as stopped."""
    return received is not None


def _unraisable(unraisable: Any) -> None:
    """Python drops an exception raised inside a garbage-collection or weakref callback ("Exception ignored
    in ..."): a stop that lands there would be lost, with every later stop signal ignored. Send it again, so
    that it lands in the code the callback interrupted."""
    global received
    error = unraisable.exc_value
    if isinstance(error, Stopped) and error is received:
        received = None
        for each in STOP_SIGNALS:
            signal.signal(each, _raise)
        # a moment later, from another thread: raised here, in the hook, the stop would be dropped again
        resend = threading.Timer(0.05, os.kill, (os.getpid(), error.signum))
        resend.daemon = True
        resend.start()
        return
    _python_unraisable(unraisable)


def _workers() -> list[psutil.Process]:
    """This process's descendants that run work (a joblib launcher's workers); not the resource trackers of
    multiprocessing and loky, which ignore stop signals and end with this process."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if not any("resource_tracker" in part for part in child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


def _in_a_pool(process: psutil.Process) -> bool:
    try:
        return any("loky" in part for part in process.cmdline())
    except psutil.Error:
        return False


def _send(processes: list[psutil.Process], signum: int) -> None:
    """Pass the signal on, so each child ends its run as this process does: a sender such as Kubernetes or
    ``timeout`` signals one process only."""
    for process in processes:
        try:
            process.send_signal(signum)
        except psutil.Error:
            pass


def install() -> None:
    """Raise :class:`Stopped` on every polite stop signal; only possible (and only needed) in the main thread."""
    global _python_unraisable
    if threading.current_thread() is threading.main_thread():
        for each in STOP_SIGNALS:
            signal.signal(each, _raise)
        if sys.unraisablehook is not _unraisable:
            _python_unraisable, sys.unraisablehook = sys.unraisablehook, _unraisable


def note_only() -> None:
    """Between jobs in a pool worker: a stop is noted (the next job is then not started), not raised, since
    raised in the pool's own loop it would end the worker and make the pool kill its siblings."""
    if threading.current_thread() is threading.main_thread():
        for each in STOP_SIGNALS:
            signal.signal(each, _note)


def _note(signum: int, frame: Optional[FrameType]) -> None:
    global received
    received = received or Stopped(signum)


def _ignore(signum: int, frame: Optional[FrameType]) -> None:
    """A further stop signal while the first one's bookkeeping runs."""


def done() -> None:
    """The command's work is done and said: a stop signal from here on (while Python shuts down) changes nothing,
    and would otherwise end the process as that signal (exit 130 after Ctrl-C) with no word, after a complete
    result."""
    for each in STOP_SIGNALS:
        signal.signal(each, signal.SIG_IGN)


def exit(status: int) -> NoReturn:
    """Exit with ``status`` after a stop. The stop signals are ignored from here on: as Python shuts down it puts
    back the default action of every signal it handled, and a second signal arriving then (an impatient Ctrl-C)
    would end the process as that signal, with another status than the one the message and the record give."""
    for each in STOP_SIGNALS:
        signal.signal(each, signal.SIG_IGN)
    sys.exit(status)
