"""The MLflow UI in a real browser: ``cifar-exp ui`` over a store holding a two-job sweep, driven by headless
Chromium (Playwright for Python with Debian's ``chromium``; no browser download) to the experiment's runs
page and to the compare view of the two child runs. Screenshots land in ``outputs/ui_screenshots/``."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, cli, serve, sweep_runs, tiny

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


def test_experiment_page_and_compare_view_show_the_sweep(tmp_path, npz_dir, store_uri, browser):
    done = cli(tmp_path, "--multirun", *tiny(npz_dir, store_uri), "optimizer.lr=1e-3,1e-4")
    assert done.returncode == 0, done.stderr[-3000:]
    parent, children = sweep_runs(store_uri)
    assert [r.info.run_name for r in children] == ["adam-lr1e-3-winning-shift_flip-s0",
                                                   "adam-lr1e-4-winning-shift_flip-s0"]
    experiment = parent.info.experiment_id
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    ui = [str(Path(sys.executable).with_name("cifar-exp")), "ui", "--backend-store-uri", store_uri]

    with serve(ui, tmp_path) as url:
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"{url}/#/experiments/{experiment}/runs?workflowType=machine_learning")
        page.get_by_text(parent.info.run_name).first.wait_for(timeout=60_000)
        page.locator("[role=gridcell]", has_text=parent.info.run_name).get_by_role("button").first.click()
        for child in children:
            page.get_by_text(child.info.run_name).first.wait_for(timeout=30_000)
        page.screenshot(path=SCREENSHOTS / "experiment_runs.png")

        ids, experiments = json.dumps([r.info.run_id for r in children]), json.dumps([experiment])
        page.goto(f"{url}/#/compare-runs?runs={ids}&experiments={experiments}")
        page.get_by_text("Comparing 2 Runs").wait_for(timeout=60_000)
        for child in children:
            page.get_by_text(child.info.run_name).first.wait_for(timeout=30_000)
        lr_row = page.locator("tr", has=page.locator("th,td", has_text=re.compile(r"^optimizer\.lr$"))).first
        assert lr_row.inner_text().split("\t")[1:] == [c.data.params["optimizer.lr"] for c in children]
        page.get_by_text("test_accuracy", exact=True).last.wait_for(timeout=30_000)
        shown = page.evaluate(METRIC_VALUES, "test_accuracy")  # rounded to 3 decimals, in the order of `ids`
        assert [float(v) for v in shown] == pytest.approx([c.data.metrics["test_accuracy"] for c in children],
                                                          abs=5e-4)
        page.screenshot(path=SCREENSHOTS / "compare_runs.png", full_page=True)

        page.goto(f"{url}/#/experiments/{experiment}/runs/{parent.info.run_id}?workflowType=machine_learning")
        page.get_by_text("2 jobs, 0 failed").first.wait_for(timeout=60_000)
        page.screenshot(path=SCREENSHOTS / "sweep_parent.png")
        page.close()
    assert (SCREENSHOTS / "experiment_runs.png").stat().st_size > 10_000
