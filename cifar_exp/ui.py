"""``cifar-exp ui``: the MLflow UI over a store, started as a child process; its addresses are printed once it
answers, pointing at the runs table in the model-training view (MLflow 3 opens on its GenAI view otherwise)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Optional

import psutil

from cifar_exp.config import PROJECT_ROOT, default_store_uri
from cifar_exp.errors import CifarExpError


def serve(host: str, port: int, store: str, experiment: Optional[str], start_timeout: float, workers: int = 1) -> None:
    """Serve the MLflow UI on ``host:port`` over ``store`` (the project's default one unless told); once the
    server answers, print the address of ``experiment``'s runs table. Ends with the server (Ctrl-C or SIGTERM
    stop both). ``workers``: uvicorn's processes (MLflow's default, 4, each loading MLflow's server, answered
    2.3 s later and stopped slower on 2 cores: one suffices for one person browsing)."""
    from cifar_exp import tracking

    default = store == default_store_uri()
    if default:
        (PROJECT_ROOT / "mlruns").mkdir(exist_ok=True)
    tracking.prepare_store(store, must_exist=not default, setting="--backend-store-uri")  # a typo is no new store
    _check_port_free(host, port)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        store,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    # MLflow 3 also starts GenAI job workers (huey) with its server; browsing runs needs none of them.
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false"),
    }
    base = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"
    print(f"starting the MLflow UI over {store} ...", flush=True)
    # Its own process group: a stop reaches uvicorn and its workers too, even those the server starts after the stop
    # arrived (a server stopped mid-start-up went on to start uvicorn, which then held the port and this command's
    # output open); Ctrl-C reaches this command, which stops the group.
    server = subprocess.Popen(command, env=env, start_new_session=True)
    stopped: list[int] = []

    def stop(signum: int, frame: object) -> None:  # SIGTERM, SIGHUP: the server goes with this command
        stopped.append(signum)
        _stop(server, wait=False)

    for each in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(each, stop)
    try:
        if not _answers(base, server, start_timeout) and not stopped:
            raise CifarExpError(
                f"the MLflow UI did not start: its server {_ended(server, start_timeout)} (its own lines "
                f"above say why)."
            )
        if not stopped:
            print(f"MLflow UI on {base} over {store}", flush=True)
            print("\n".join(_landing(base, store, experiment)), flush=True)
        server.wait()
    except KeyboardInterrupt:
        stopped.append(signal.SIGINT)
    finally:
        _stop(server)
    if stopped:
        print(f"stopped by {signal.Signals(stopped[0]).name}; the MLflow UI server stopped with it", file=sys.stderr)
        raise SystemExit(128 + stopped[0])
    if server.returncode != 0:
        raise SystemExit(server.returncode)


def _answers(base: str, server: subprocess.Popen, seconds: float) -> bool:
    """Whether the server answers ``/health`` before it exits or ``seconds`` pass."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    return False


def _ended(server: subprocess.Popen, seconds: float) -> str:
    code = server.poll()
    return f"exited with code {code}" if code is not None else f"did not answer within {seconds:.0f} s"


def _stop(server: subprocess.Popen, wait: bool = True) -> None:
    """Stop the server's process group (the server, uvicorn and its workers, which hold the port), waiting until
    every one has exited (killed after 30 s) unless ``wait`` is false (then the next call waits)."""
    _signal_group(server.pid, signal.SIGTERM)
    if not wait:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _group_alive(server):
        time.sleep(0.1)
    _signal_group(server.pid, signal.SIGKILL)
    server.wait()
    while _group_alive(server):  # the last workers, killed: until the system has removed them
        time.sleep(0.05)


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(server: subprocess.Popen) -> bool:
    """Whether any process of the server's group is still running (the server itself reaped once it exits)."""
    server.poll()
    try:
        os.killpg(server.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _running_members(server.pid) > 0


def _running_members(group: int) -> int:
    """The processes of ``group`` that have not exited (a zombie has: nobody may reap it in a container)."""
    running = 0
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == group and process.status() != psutil.STATUS_ZOMBIE:
                running += 1
        except (ProcessLookupError, psutil.Error):
            pass
    return running


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port another program listens on; as servers do (uvicorn too), reuse one whose last connections
    are only closing (TIME_WAIT after a UI just stopped)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise CifarExpError(
                f"cannot serve the UI on {host}:{port} ({error.strerror}): another program (perhaps "
                f"another MLflow UI) uses that port; choose another, e.g. cifar-exp ui --port "
                f"{port + 1}."
            ) from error


def _landing(base: str, store: str, experiment: Optional[str]) -> list[str]:
    """Where a newcomer should start (see :func:`cifar_exp.tracking.links.landing`); the bare address if the
    store cannot be read (the UI will say why)."""
    from cifar_exp.config import default_experiment
    from cifar_exp.tracking import client_for
    from cifar_exp.tracking.links import experiments_url, landing

    experiment = experiment or default_experiment()
    try:
        return landing(base, client_for(store), experiment)
    except Exception as error:  # any store failure: the UI still starts, and shows the error itself
        return [f"Experiments: {experiments_url(base)} (the store could not be read here: {error})"]
