"""A stop signal becomes :class:`Stopped` in the main thread, with the shell's exit status, once."""

from __future__ import annotations

import os
import signal

import pytest

from cifar_exp import signals


@pytest.fixture()
def handlers():
    saved = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}
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
    assert signal.getsignal(signum) == signal.SIG_IGN  # a second signal cannot interrupt the bookkeeping
    stopped.value.details.append("run x is KILLED")
    assert stopped.value.explain() == f"stopped by {signal.Signals(signum).name}; run x is KILLED."
