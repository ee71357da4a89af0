"""The console script's sub-commands: a command line that names none trains; ui and report are argparse
sub-commands."""

from __future__ import annotations

import socket

import pytest

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
