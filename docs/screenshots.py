"""The README's screenshots of the MLflow UI, made the way a user meets it.

    python docs/screenshots.py                 # writes docs/ui_*.png (needs Debian's `chromium` and `playwright`)

Trains a small sweep (2 activations x 2 learning rates x 2 seeds on digits) through the real command line
into a new SQLite store, starts `mlflow ui` on 127.0.0.1 on it, and drives headless Chromium (Playwright with
`executable_path`, no download) through the clicks the README describes:
- `ui_runs.png`: the runs table, the sweep's row expanded, *Columns* -> activation.name, optimizer.lr, seed,
  val/loss, test/accuracy ticked (Dataset, Source, Models unticked);
- `ui_chart.png`: the chart view (the second of the three view buttons), "val/accuracy" typed into
  *Search metric charts*;
- `ui_parent.png`: the sweep's parent run, *Overview*, *Show more*: its description (the groups table);
- `ui_models.png`: the same table with *Columns* -> Dataset and Models ticked again: each job's data sets
  (training, validation, testing) and its MLflow model;
- `ui_report.png`: the parent run's *Artifacts* tab, `report.html` selected (only when the sweep logged one);
- `ui_system.png`: the best job's *System metrics* tab.
Nothing leaves 127.0.0.1; each PNG is checked to stay under `MAX_BYTES`. The parent's page is opened at the
address a job prints (`...#/experiments/<id>/runs/<id>?workflowType=machine_learning`), and the script stops
if that shows MLflow's GenAI view ("Evaluation runs") instead of the model-training view.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.servers import free_port, wait_until  # noqa: E402

MAX_BYTES = 300_000
SWEEP = ["activation=relu,tanh", "optimizer.lr=0.01,0.1", "seed=0,1", "trainer.epochs=8", "trainer.progress=none"]
COLUMNS = ["activation.name", "optimizer.lr", "seed", "val/loss", "test/accuracy"]
UNTICK = ["Dataset", "Source", "Models"]
CHART = "val/accuracy"
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
CLOSED_ASSISTANT = ("localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
                    "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');")


def train_sweep(folder: Path) -> str:
    """The sweep into `folder`/mlflow.db through `python -m framework.train -m`; returns the store URI."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    subprocess.run([sys.executable, "-m", "framework.train", "-m", *SWEEP, f"tracking.uri={uri}",
                    f"hydra.sweep.dir={folder / 'sweep'}"], cwd=folder, env=ENV, check=True,
                   stdout=subprocess.DEVNULL)
    return uri


def start_ui(uri: str, port: int) -> subprocess.Popen:
    ui = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
                           "--port", str(port), "--workers", "1"], env=ENV, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)

    def answers() -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return True
        except OSError:
            return False

    try:
        wait_until(answers, ui, "mlflow ui", timeout=180)
    except BaseException:
        os.killpg(ui.pid, signal.SIGTERM)
        raise
    return ui


def parent_run(uri: str) -> tuple[str, str, bool, str]:
    """(experiment id, the sweep parent's run id, whether it has a report.html artifact, its best job's run id)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    (parent,) = client.search_runs(["0"], "tags.`sweep.role` = 'parent'")
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    return (parent.info.experiment_id, parent.info.run_id, "report.html" in names,
            parent.data.tags["sweep.best_run_id"])


def shoot(base: str, experiment: str, parent: str, report: bool, best: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium: apt-get install -y chromium")
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.add_init_script(CLOSED_ASSISTANT)
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base) else route.abort())

        page.goto(f"{base}/#/experiments/{experiment}?workflowType=machine_learning")
        page.get_by_text("Run Name").first.wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        page.get_by_role("button", name="Columns").click()
        search = page.get_by_placeholder("Search columns")
        for name in COLUMNS + UNTICK:
            search.fill(name)
            page.wait_for_timeout(300)
            page.locator(".du-bois-light-tree-title").filter(has_text=re.compile(f"^{re.escape(name)}$")).first.click()
        page.keyboard.press("Escape")
        page.locator(f"[row-id='{parent}'] button").first.click()  # the sweep's row opens into its jobs
        page.wait_for_timeout(1500)
        shots.append(save(page, out / "ui_runs.png"))

        page.get_by_role("button", name="Columns").click()
        for name in UNTICK[::2]:  # Dataset, Models
            search.fill(name)
            page.wait_for_timeout(300)
            page.locator(".du-bois-light-tree-title").filter(has_text=re.compile(f"^{re.escape(name)}$")).first.click()
        page.keyboard.press("Escape")
        page.wait_for_timeout(1500)
        shots.append(save(page, out / "ui_models.png"))

        page.locator("label:has(input[name=runs-view-mode][value=CHART])").click()
        page.get_by_placeholder("Search metric charts").fill(CHART)
        page.wait_for_timeout(4000)
        shots.append(save(page, out / "ui_chart.png"))

        page.goto(f"{base}/#/experiments/{experiment}/runs/{parent}?workflowType=machine_learning")
        page.get_by_text("Description").first.wait_for(timeout=60_000)
        if "Evaluation runs" in page.inner_text("body"):  # the GenAI view: the address a job prints is wrong
            raise SystemExit("the run's address opened MLflow's GenAI view, not the model-training view")
        page.get_by_text("Show more").first.click()
        page.wait_for_timeout(1500)
        shots.append(save(page, out / "ui_parent.png"))

        if report:
            page.goto(f"{base}/#/experiments/{experiment}/runs/{parent}/artifacts/report.html"
                      f"?workflowType=machine_learning")
            page.wait_for_timeout(5000)
            shots.append(save(page, out / "ui_report.png"))
        else:
            print("the sweep logged no report.html (framework.report missing): ui_report.png not made", file=sys.stderr)

        page.goto(f"{base}/#/experiments/{experiment}/runs/{best}/system-metrics?workflowType=machine_learning")
        page.wait_for_timeout(5000)
        shots.append(save(page, out / "ui_system.png"))
        browser.close()
    return shots


def save(page, path: Path) -> Path:
    page.screenshot(path=str(path))
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{path}: {size:,} bytes > {MAX_BYTES:,}")
    print(f"{path} ({size // 1000} kB)")
    return path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs", help="folder of the PNGs (default: %(default)s)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        uri = train_sweep(Path(tmp))
        port = free_port()
        ui = start_ui(uri, port)
        try:
            shoot(f"http://127.0.0.1:{port}", *parent_run(uri), args.out)
        finally:
            os.killpg(ui.pid, signal.SIGTERM)
            ui.wait(30)


if __name__ == "__main__":
    main()
