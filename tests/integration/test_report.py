"""A real sweep's report: written at the sweep's end, logged to its parent run, its groups' means those of
the store, and opened in headless Chromium (driven over its DevTools pipe) without a console error or a
network request."""
from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections import defaultdict

import numpy as np
import pytest

from tests.integration.test_sweep import sweep

mlflow = pytest.importorskip("mlflow")
CHROMIUM = shutil.which("chromium")
SVG = "{http://www.w3.org/2000/svg}"


class DevTools:
    """Headless Chromium driven over `--remote-debugging-pipe` (fd 3: commands in, fd 4: replies and events
    out, each a JSON message ended by a NUL byte): no extra package, no port."""

    def __init__(self, profile):
        to_child, self._out = os.pipe()
        self._in, from_child = os.pipe()

        def fds():  # the child's fd 3 and 4, inheritable (close_fds=False: Popen would close them after this)
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child)]  # out of 3 and 4's way
            for fd, target in zip(high, (3, 4)):
                os.dup2(fd, target)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--remote-debugging-pipe", "about:blank"],
            preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child)
        os.close(from_child)
        self._buffer, self._id, self.events = b"", 0, []

    def send(self, method: str, session: str | None = None, timeout: float = 30, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._out, json.dumps(message).encode() + b"\0")
        return self.wait(lambda m: m.get("id") == self._id, timeout)

    def wait(self, done, timeout: float = 30) -> dict:
        """Read messages (events kept in `events`) until one satisfies `done`; returns it."""
        end = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if done(message):
                    if "error" in message:
                        raise RuntimeError(message["error"])
                    return message
            left = end - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise EOFError("chromium exited")
            self._buffer += chunk

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (OSError, EOFError, TimeoutError, RuntimeError):
            pass
        self.proc.wait(timeout=10)
        os.close(self._out)
        os.close(self._in)


def open_page(url: str, profile) -> tuple[list[str], list[str], int]:
    """(console errors and uncaught exceptions, every URL the page requested, its count of <svg> elements
    with marks) of `url` loaded in Chromium."""
    tools = DevTools(profile)
    try:
        target = tools.send("Target.createTarget", url="about:blank")["result"]["targetId"]
        session = tools.send("Target.attachToTarget", targetId=target, flatten=True)["result"]["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.send(f"{domain}.enable", session)
        tools.send("Page.navigate", session, url=url)
        tools.wait(lambda m: m.get("method") == "Page.loadEventFired")
        expression = ("[...document.querySelectorAll('svg')].filter(s => s.querySelector("
                      "'polyline, polygon, circle, path')).length")
        figures = tools.send("Runtime.evaluate", session, expression=expression, returnByValue=True)
        time.sleep(0.5)  # anything the page would still fetch or log after its load event
        tools.send("Runtime.evaluate", session, expression="1")  # and drain the events so far
    finally:
        tools.close()
    errors = [json.dumps(e["params"])[:300] for e in tools.events
              if e["method"] == "Runtime.exceptionThrown"
              or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
              or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    requests = [e["params"]["request"]["url"] for e in tools.events if e["method"] == "Network.requestWillBeSent"]
    return errors, requests, figures["result"]["result"]["value"]


@pytest.mark.slow  # ~15 s: a 6-job sweep into SQLite; Chromium ~2 s
def test_sweep_report_groups_match_the_store_and_open_cleanly_in_chromium(tmp_path):
    uri, folder = sweep(tmp_path, "trainer.epochs=3", "optimizer.lr=0.01,0.1", "seed=0,1,2")
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["report.html"]
    stored = defaultdict(list)
    for r in runs:
        if r is not parent:
            stored[f"optimizer.lr={r.data.params['optimizer.lr']}"].append(r.data.metrics["val/loss"])

    html = (folder / "report.html").read_text()
    page = ET.fromstring(html.removeprefix("<!DOCTYPE html>\n"))
    rows = {row.get("data-group"): row for row in page.iter("tr") if row.get("data-group")}
    assert sorted(rows) == sorted(stored) == ["optimizer.lr=0.01", "optimizer.lr=0.1"]
    for group, values in stored.items():
        assert int(rows[group].get("data-n")) == len(values) == 3
        assert float(rows[group].get("data-mean")) == pytest.approx(np.mean(values), rel=1e-12)
        assert float(rows[group].get("data-std")) == pytest.approx(np.std(values, ddof=1), rel=1e-9)
    best = min(stored, key=lambda g: np.mean(stored[g]))
    assert rows[best].get("class") == "best"
    titles = {t.text for t in page.iter(f"{SVG}text")}
    assert {"val/loss", "batch/loss (EMA)", "layers.0.W weights", "layers.0.W grads",
            "optimizer.lr vs val/loss"} <= titles

    from framework.report import main

    moved = folder.rename(tmp_path / "elsewhere")  # the run logs gone: the store's records are read
    for target in (parent.info.run_id[:8], "sweep"):  # a parent run id prefix; an experiment
        main([target, "--uri", uri, "--out", str(tmp_path / target)])
        stored_page = ET.parse(tmp_path / target / "report.html").getroot()
        means = {row.get("data-group"): float(row.get("data-mean")) for row in stored_page.iter("tr")
                 if row.get("data-group")}
        assert means == {g: float(rows[g].get("data-mean")) for g in rows}
        assert {"layers.0.W weights", "batch/loss (EMA)"} <= {t.text for t in stored_page.iter(f"{SVG}text")}

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium): the page was not opened in a browser")
    svgs = len(re.findall(r"<svg\b", html))
    url = (moved / "report.html").resolve().as_uri()
    errors, requests, figures = open_page(url, tmp_path / "profile")
    assert errors == []
    assert requests == [url]  # the page itself, nothing else
    assert figures == svgs >= 8  # every figure an SVG with marks
