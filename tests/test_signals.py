"""A stop signal becomes :class:`Stopped` in the main thread, with the shell's exit status, once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import weakref

import pytest

from cifar_exp import signals


@pytest.fixture()
def handlers(monkeypatch):
    saved = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}
    monkeypatch.setattr(signals, "received", None)  # each test is a fresh process's first stop
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_raises_stopped(handlers, signum):
    signals.install()
    with pytest.raises(signals.Stopped) as stopped:
        os.kill(os.getpid(), signum)
    assert stopped.value.exit_status == 128 + signum and str(stopped.value).startswith("stopped by SIG")
    assert signals.received is stopped.value
    os.kill(os.getpid(), signum)  # a second signal cannot interrupt the bookkeeping, nor raise OSError
    stopped.value.details.append("run x is KILLED")
    assert stopped.value.explain() == f"stopped by {signal.Signals(signum).name}; run x is KILLED."


def test_a_stop_inside_a_deferred_block_is_raised_when_the_outermost_block_ends(handlers):
    signals.install()
    reached = []
    with pytest.raises(signals.Stopped) as stopped:
        with signals.deferred():
            with signals.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                reached.append("inner end")
            reached.append("outer end")  # the inner block's end does not raise yet
    assert reached == ["inner end", "outer end"] and stopped.value.signum == signal.SIGTERM


def test_a_store_call_cut_by_a_stop_signal_completes_before_the_stop(handlers, store_uri, monkeypatch):
    """The signal lands inside the call (as it would inside a SQLite transaction); the call completes first."""
    from mlflow.tracking import MlflowClient

    from cifar_exp.tracking.store import client_for

    signals.install()
    client = client_for(store_uri)
    run_id = client.create_run(client.create_experiment("e")).info.run_id
    original = MlflowClient.set_tag

    def signalled_midway(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGHUP)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "set_tag", signalled_midway)
    with pytest.raises(signals.Stopped):
        client.set_tag(run_id, "written", "yes")
    assert MlflowClient(store_uri).get_run(run_id).data.tags["written"] == "yes"


def test_a_stop_dropped_by_a_weakref_callback_is_raised_again_after_it(handlers, monkeypatch):
    """Python drops exceptions raised in garbage-collection callbacks; the stop must not vanish with it."""
    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)
    signals.install()

    class Thing:
        pass

    def callback(ref):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs here, inside the callback

    thing = Thing()
    ref = weakref.ref(thing, callback)
    with pytest.raises(signals.Stopped) as stopped:
        del thing
        for _ in range(100):
            time.sleep(0.01)
    assert stopped.value.signum == signal.SIGTERM and ref() is None


def test_a_stop_after_the_work_is_done_changes_nothing():
    """Ctrl-C as Python shuts down after a complete, printed result ended the process as SIGINT (130), no word."""
    script = (
        "import os, signal\n"
        "from cifar_exp import signals\n"
        "signals.install()\n"
        "signals.done()\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "print('done')\n"
    )
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0 and finished.stdout == "done\n", finished.stderr
