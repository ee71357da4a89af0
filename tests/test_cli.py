"""The console script's sub-commands: a command line that names none trains; ui and report are argparse
sub-commands."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cifar_exp import cli


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


def test_the_installed_console_script_composes_and_validates_from_any_folder(tmp_path):
    """``cifar-exp`` reaches Hydra through the installed package (``pkg://cifar_exp.conf``), not through a file
    path as ``python -m cifar_exp`` does; run it for real, from a folder outside the project."""
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


def test_the_done_line_hides_passwords_and_names_a_ui_command_that_opens_the_store():
    import shlex

    from cifar_exp.__main__ import _said
    from cifar_exp.cli import parser

    said = _said("r1", {"test_accuracy": 0.5}, "http://user:secret@127.0.0.1:5000", "cifar_exp")
    assert "secret" not in said and said.endswith("(browse with: http://user:***@127.0.0.1:5000)")
    store = "sqlite:////tmp/it's here/mlflow.db"  # a quote and a space: the command must still parse
    said = _said("r1", {"test_accuracy": 0.5}, store, "decay_study")
    command = shlex.split(said.split("browse with: ")[1].removesuffix(")"))
    args = parser().parse_args(command[1:])
    assert (args.backend_store_uri, args.experiment) == (store, "decay_study")
