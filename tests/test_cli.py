"""The console script's sub-commands: a command line that names none trains; ui and report are argparse
sub-commands."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest
import requests
from conftest import free_port

from cifar_exp import cli
from cifar_exp.errors import CifarExpError


def test_sub_commands_parse():
    assert cli.parser().parse_args(["train"]).run is cli.train
    ui = cli.parser().parse_args(["ui", "--port", "5001"])
    assert ui.run is cli.ui and ui.port == 5001 and ui.host == "127.0.0.1"
    assert cli.parser().parse_args(["report"]).run is cli.report


@pytest.mark.parametrize(
    "argv,command,args",
    [
        (["optimizer=sgd"], "train", ["optimizer=sgd"]),
        (["--multirun", "dropout=a,b"], "train", ["--multirun", "dropout=a,b"]),
        ([], "train", []),
        (["train", "--cfg", "job"], "train", ["--cfg", "job"]),
        (["report", "all"], "report", ["all"]),
        (["report", "--all", "--uri", "sqlite:///x.db"], "report", ["--all", "--uri", "sqlite:///x.db"]),
    ],
)
def test_main_routes_each_command_line(monkeypatch, argv, command, args):
    seen = []
    monkeypatch.setattr(cli, command, lambda parsed: seen.append(parsed.args))
    cli.main(argv)
    assert seen == [args]


def test_ui_refuses_a_port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CifarExpError, match=f"127.0.0.1:{port}"):
            cli._check_port_free("127.0.0.1", port)


def test_the_installed_console_script_composes_and_validates_from_any_folder(tmp_path):
    """``cifar-exp`` reaches Hydra through the installed package (``pkg://cifar_exp.conf``), not through a file
    path as ``python -m cifar_exp`` does; run it for real, from a folder outside the project."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "cifar-exp"
    composed = subprocess.run(
        [str(script), "--cfg", "job", "optimizer=sgd"], cwd=tmp_path, capture_output=True, text=True
    )
    assert composed.returncode == 0 and "name: sgd" in composed.stdout, composed.stderr[-2000:]
    refused = subprocess.run([str(script), "optimizer.lr=-1"], cwd=tmp_path, capture_output=True, text=True)
    assert refused.returncode == 2 and "optimizer.lr=-1.0 must be > 0" in refused.stderr, refused.stderr[-2000:]


def test_ui_on_a_store_file_that_does_not_exist_is_refused_not_created(tmp_path, capsys):
    missing = tmp_path / "nosuch.db"
    with pytest.raises(SystemExit) as ended:
        cli.main(["ui", "--backend-store-uri", f"sqlite:///{missing}"])
    assert ended.value.code == 2 and "there is no such file" in capsys.readouterr().err
    assert not missing.exists()


def _ui(store: str, port: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cifar_exp.cli", "ui", "--backend-store-uri", store, "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_ui_prints_its_address_once_the_server_answers_and_sigterm_stops_both(tmp_path):
    """The address is printed when the server already answers (not while it starts); SIGTERM to the command
    stops the server with it, freeing the port."""
    from cifar_exp.tracking import prepare_store

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    prepare_store(store)
    port = free_port()
    ui = _ui(store, port)
    try:
        lines = []
        while not (lines and lines[-1].startswith("MLflow UI on")):
            line = ui.stdout.readline()
            assert line, f"ui ended before printing its address: {ui.stderr.read()[-2000:]}"
            lines.append(line)
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok  # answers the moment it is printed
        following = [ui.stdout.readline()]  # the server's own access-log lines interleave with ours
        while following[-1] and "Experiments" not in following[-1]:
            following.append(ui.stdout.readline())
        assert "Experiments (no run in 'cifar_exp' yet)" in following[-1], following
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=60) == 0
    finally:
        if ui.poll() is None:  # SIGTERM first, so the command stops its server; never leave one behind
            ui.terminate()
            try:
                ui.wait(timeout=60)
            except subprocess.TimeoutExpired:
                ui.kill()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # the server went with it


def test_ui_whose_server_does_not_answer_in_time_says_so_and_leaves_nothing_running(tmp_path):
    from cifar_exp.tracking import prepare_store

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    prepare_store(store)
    port = free_port()
    ui = _ui(store, port, "--start-timeout", "0.5")
    out, err = ui.communicate(timeout=60)
    assert ui.returncode == 2 and "the MLflow UI did not start: its server did not answer within" in err, err
    assert "MLflow UI on" not in out
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
