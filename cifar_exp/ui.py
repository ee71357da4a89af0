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
    tracking.prepare_store(store, must_exist=not default)  # a mistyped path is not a new store
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
    server = subprocess.Popen(command, env=env)
    family: list[psutil.Process] = []  # the server's descendants, seen while it ran
    stopped: list[int] = []

    def stop(signum: int, frame: object) -> None:  # SIGTERM, SIGHUP: the server goes with this command
        stopped.append(signum)
        _stop(server, family, wait=False)

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
        _stop(server, family)
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


def _stop(server: subprocess.Popen, family: list[psutil.Process], wait: bool = True) -> None:
    """Stop the server and the processes it started (uvicorn and its workers hold the port; ``family`` gathers
    them across calls), waiting for them all unless ``wait`` is false (then the next call waits)."""
    try:
        family += psutil.Process(server.pid).children(recursive=True)
    except psutil.Error:
        pass
    if server.poll() is None:
        server.terminate()
    for process in family:  # uvicorn may not be told by a server still starting up: each is told itself
        try:
            process.terminate()
        except psutil.Error:
            pass
    if not wait:
        return
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    _, alive = psutil.wait_procs(family, timeout=30)
    for process in alive:
        process.kill()


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
