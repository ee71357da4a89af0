"""``cifar-exp ui`` (:mod:`cifar_exp.ui`): its port, its server's start and stop; and the MLflow UI in a real
browser, where a newcomer starts: ``cifar-exp ui`` over a store holding a two-job sweep,
driven by headless Chromium (Playwright for Python with Debian's ``chromium``; no browser download) from the URL
it prints and from the bare root URL clicked through as a person would, to the runs table, a run's Logged models
and Datasets panels, its confusion matrix in the artifacts view, and the compare view of the sweep's jobs.
Screenshots land in ``outputs/ui_screenshots/``."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import PROJECT_ROOT, cli, free_port, serve, sweep_runs, tiny

from cifar_exp import ui as ui_module
from cifar_exp.errors import CifarExpError

SCREENSHOTS = PROJECT_ROOT / "outputs" / "ui_screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright missing: make install (extra 'dev')")
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed and could not be (make browser: apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


# The compare view's metrics are two virtualized grids (names | one value per run) whose cells line up by
# their CSS ``top``: return the texts of the value cells beside the metric's name.
METRIC_VALUES = """(name) => {
  const link = [...document.querySelectorAll('a[title="Plot chart"]')].find(a => a.textContent.trim() === name);
  if (!link) return null;
  const cell = link.parentElement;
  let box = cell.closest('[role=grid]');
  while (box && box.querySelectorAll('[role=grid]').length < 2) box = box.parentElement;
  return [...box.querySelectorAll('[role=grid] div')].filter(d => d !== cell && d.style.top === cell.style.top
      && d.style.position === 'absolute' && !d.contains(link)).map(d => d.innerText.trim());
}"""


def printed(log: Path, label: str, seconds: float = 60) -> str:
    """The URL that ``cifar-exp ui`` printed after ``label`` (it prints once its server answers)."""
    deadline = time.monotonic() + seconds
    while not (lines := [line for line in log.read_text().splitlines() if line.startswith(label)]):
        assert time.monotonic() < deadline, f"cifar-exp ui printed no '{label}': {log.read_text()[-2000:]}"
        time.sleep(0.2)
    (line,) = lines
    return line.split(": ", 1)[1]


def runs_table_shows_the_sweep(page, parent, children) -> None:
    """The runs table lists the sweep's parent; expanded, its children."""
    page.locator("[role=gridcell]", has_text=parent.info.run_name).first.wait_for(timeout=60_000)
    page.locator("[role=gridcell]", has_text=parent.info.run_name).get_by_role("button").first.click()
    for child in children:
        page.get_by_text(child.info.run_name).first.wait_for(timeout=30_000)


def test_a_newcomer_finds_the_runs_models_datasets_and_plots(tmp_path, npz_dir, store_uri, browser):
    done = cli(tmp_path, "--multirun", *tiny(npz_dir, store_uri), "optimizer.lr=1e-3,1e-4")
    assert done.returncode == 0, done.stderr[-3000:]
    parent, children = sweep_runs(store_uri)
    assert [r.info.run_name for r in children] == [
        "adam-lr1e-3-winning-shift_flip-s0",
        "adam-lr1e-4-winning-shift_flip-s0",
    ]
    best = next(c for c in children if c.info.run_id == parent.data.tags["best_run_id"])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    ui = [str(Path(sys.executable).with_name("cifar-exp")), "ui", "--backend-store-uri", store_uri]

    with serve(ui, tmp_path) as url:
        log = tmp_path / f"mlflow-server-{url.rsplit(':', 1)[1]}.log"
        runs_url = printed(log, "Runs of 'cifar_exp'")
        assert runs_url == f"{url}/#/experiments/{parent.info.experiment_id}/runs?workflowType=machine_learning"

        # 1. The printed URL: the runs table in the model-training view.
        with browser.new_context(viewport={"width": 1600, "height": 1000}) as context:
            page = context.new_page()
            page.goto(runs_url)
            runs_table_shows_the_sweep(page, parent, children)
            page.screenshot(path=SCREENSHOTS / "experiment_runs.png")

        # 2. The bare root URL (MLflow's GenAI home), clicked through: "Model training", then the experiment.
        with browser.new_context(viewport={"width": 1600, "height": 1000}) as context:
            page = context.new_page()
            page.goto(url)
            page.get_by_text("Model training", exact=True).click()
            page.get_by_role("link", name="cifar_exp", exact=True).first.click()
            runs_table_shows_the_sweep(page, parent, children)
            page.screenshot(path=SCREENSHOTS / "from_the_root.png")

            # The best job's page: its logged MLflow Model, registered, and its three datasets.
            page.get_by_role("link", name=best.info.run_name, exact=True).first.click()
            page.get_by_text("Logged models (1)").wait_for(timeout=60_000)
            page.get_by_text("cifar100-train", exact=False).first.wait_for(timeout=30_000)
            page.get_by_text("cifar_exp-sweep-optimizer.lr").first.wait_for(timeout=30_000)
            page.screenshot(path=SCREENSHOTS / "run_page.png", full_page=True)

            # Its artifacts: the confusion matrix shown as an image.
            page.get_by_role("tab", name="Artifacts").click()
            page.get_by_text("plots", exact=True).first.click()
            page.get_by_text("confusion_matrix.png", exact=True).first.click()
            image = page.locator('img[alt="plots/confusion_matrix.png"]').first  # its src is a blob: URL
            image.wait_for(timeout=60_000)
            page.wait_for_function(
                "(img) => img.complete && img.naturalWidth > 100", arg=image.element_handle(), timeout=30_000
            )
            page.screenshot(path=SCREENSHOTS / "confusion_matrix.png")

        # 3. The compare view of the sweep's jobs, from the URL printed for it.
        with browser.new_context(viewport={"width": 1600, "height": 1000}) as context:
            page = context.new_page()
            page.goto(printed(log, "Newest sweep"))
            page.get_by_text("Comparing 2 Runs").wait_for(timeout=60_000)
            for child in children:
                page.get_by_text(child.info.run_name).first.wait_for(timeout=30_000)
            lr_row = page.locator("tr", has=page.locator("th,td", has_text=re.compile(r"^optimizer\.lr$"))).first
            assert lr_row.inner_text().split("\t")[1:] == [c.data.params["optimizer.lr"] for c in children]
            page.get_by_text("test_accuracy", exact=True).last.wait_for(timeout=30_000)
            shown = page.evaluate(METRIC_VALUES, "test_accuracy")  # rounded to 3 decimals, in the runs' order
            assert [float(v) for v in shown] == pytest.approx(
                [c.data.metrics["test_accuracy"] for c in children], abs=5e-4
            )
            page.screenshot(path=SCREENSHOTS / "compare_runs.png", full_page=True)

            page.goto(
                f"{url}/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}"
                "?workflowType=machine_learning"
            )
            page.get_by_text("2 jobs, 0 failed").first.wait_for(timeout=60_000)
            page.screenshot(path=SCREENSHOTS / "sweep_parent.png")
    assert (SCREENSHOTS / "experiment_runs.png").stat().st_size > 10_000


def test_ui_refuses_a_port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CifarExpError, match=f"127.0.0.1:{port}"):
            ui_module._check_port_free("127.0.0.1", port)


def _ui(store: str, port: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cifar_exp.cli", "ui", "--backend-store-uri", store, "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_ui_prints_its_address_once_the_server_answers_and_a_stop_ends_both(tmp_path, signum):
    """The address is printed when the server already answers (not while it starts); SIGTERM or SIGHUP to the
    command stops the server with it, freeing the port, and exits as stopped by that signal."""
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
        ui.send_signal(signum)
        assert ui.wait(timeout=60) == 128 + signum
        assert f"stopped by {signal.Signals(signum).name}; the MLflow UI server stopped with it" in ui.stderr.read()
    finally:
        if ui.poll() is None:  # SIGTERM first, so the command stops its server; never leave one behind
            ui.terminate()
            try:
                ui.wait(timeout=60)
            except subprocess.TimeoutExpired:
                ui.kill()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds: TIME_WAIT is no user
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
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
