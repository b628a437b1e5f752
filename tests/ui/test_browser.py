"""The factory in a real browser: headless Chromium materializes an asset from the Dagster UI.

``dagster dev`` (profile ``smoke``) and ``mlflow ui`` run as a user starts them (``make ui``,
``make mlflow``), on free ports of 127.0.0.1 with a temporary ``DAGSTER_HOME`` and factory home.
The browser opens ``prompt_guard``'s asset page and clicks Materialize; once the run succeeds the
page must show the stage's ``loss_curve`` plot as a decoded PNG, and the ``mlflow_run`` link must
open the MLflow run page of that materialization.

``prompt_guard`` is the cheapest training stage with no upstream assets (~20 s on smoke), so the
one run the test starts is the whole build. The factory logs to the ``mlflow ui`` server
(``MLFLOW_TRACKING_URI``), which serves the same ``<home>/mlflow.db``: then the ``mlflow_run``
URL the metadata carries is that server's page (``factory.lineage.mlflow_ui``), not
``make mlflow``'s fixed 127.0.0.1:5000 that this test may not hold.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from assets.instance import instance_settings
from assets.metadata import PLOT_MAX_PX
from factory.raycluster import ray_temp_dir

pytestmark = [pytest.mark.ui, pytest.mark.slow, pytest.mark.timeout(420)]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # dagster and mlflow of the interpreter running the tests
CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium and chromium-driver (make system-deps)
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ASSET = "prompt_guard"
STARTUP_S = 120  # dagster dev until its code location is loaded (~20 s on a quiet machine)
RUN_S = 240  # the run from launch to success (~40 s: run worker, local Ray, the stage)
UI_S = 60  # a page element to appear once its data exists
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
# What a user skips anyway: Dagster's newsletter dialog on a fresh instance would cover the page.
NO_NEWSLETTER = {"nux": {"enabled": False}}

needs_chromium = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason=f"needs {CHROMIUM} and {CHROMEDRIVER} (Debian packages chromium, chromium-driver: make system-deps)")


@dataclass
class Servers:
    dagster: str  # http://127.0.0.1:<port>
    mlflow: str
    logs: Path  # each server's output, shown when a wait fails


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def _processes_with(env_entry: str) -> list[int]:
    """Pids of the processes whose environment holds ``env_entry`` (``NAME=value``): every process the
    servers started, run workers and their Ray included, inherits the fixture's environment."""
    needle = env_entry.encode() + b"\0"
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes():
                pids.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return pids


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def _start(cmd: list[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    # Its own session: teardown signals the whole group (dagster dev's webserver, daemon, code
    # server and run workers; mlflow's server workers).
    with log.open("w") as out:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # Children that outlived the leader (a run worker finishing its step) go with the group.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _wait(what: str, check: Callable[[], Any], timeout: float, logs: Path, every: float = 1.0) -> Any:
    """Poll ``check`` until it returns a truthy value; fail with every server's log tail otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    tails = "\n".join(f"--- {log.name}\n{_tail(log)}" for log in sorted(logs.glob("*.log")))
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


def graphql(base: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{base}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["data"]


WORKSPACE = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
# The opacity an element is drawn with: the product of its own and its ancestors'.
OPACITY = """let o = 1;
for (let e = arguments[0]; e instanceof Element; e = e.parentElement) o *= +getComputedStyle(e).opacity;
return o;"""
RUNS = "{ runsOrError { ... on Runs { results { runId status } } } }"


def _location_loaded(base: str) -> bool:
    """The code location is loaded (a load error fails at once): only then does Materialize launch."""
    try:
        entries = graphql(base, WORKSPACE)["workspaceOrError"]["locationEntries"]
    except OSError:
        return False
    errors = [e["locationOrLoadError"] for e in entries
              if (e["locationOrLoadError"] or {}).get("__typename") == "PythonError"]
    assert not errors, f"code location failed to load: {errors}"
    return bool(entries) and all(e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    home, dagster_home, logs = tmp_path / "home", tmp_path / "dagster", tmp_path / "logs"
    for folder in (home, dagster_home, logs):
        folder.mkdir()
    # The factory's instance settings (make ui: python -m assets.instance) plus no newsletter dialog.
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump({**instance_settings(), **NO_NEWSLETTER}))
    dagster_port, mlflow_port = _free_port(), _free_port()
    mlflow = f"http://127.0.0.1:{mlflow_port}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "DAGSTER_HOME": str(dagster_home), "FACTORY_HOME": str(home),
           "FACTORY_PROFILE": "smoke", "MLFLOW_TRACKING_URI": mlflow}
    procs = [
        _start([str(BIN / "mlflow"), "ui", "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
                "--artifacts-destination", str(home / "mlartifacts"), "-h", "127.0.0.1", "-p", str(mlflow_port)],
               logs / "mlflow.log", env, tmp_path),
        _start([str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(dagster_port)],
               logs / "dagster.log", env, REPO),
    ]
    started = time.monotonic()
    try:
        dagster = f"http://127.0.0.1:{dagster_port}"
        _wait("the MLflow server", lambda: _http_ok(f"{mlflow}/health"), STARTUP_S, logs)
        _wait("the Dagster webserver", lambda: _http_ok(f"{dagster}/server_info"), STARTUP_S, logs)
        _wait("the code location", lambda: _location_loaded(dagster), STARTUP_S, logs, every=2.0)
        print(f"\nservers up in {time.monotonic() - started:.0f} s")
        yield Servers(dagster, mlflow, logs)
    finally:
        stopping = time.monotonic()
        for proc in reversed(procs):
            _stop(proc)
        left = _processes_with(f"DAGSTER_HOME={dagster_home}")
        for pid in left:  # ours (they carry this test's DAGSTER_HOME), yet outside the groups: setsid
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ray_temp_dir(home), ignore_errors=True)  # the embedded Ray's session folder in /tmp
        print(f"servers stopped in {time.monotonic() - stopping:.0f} s")
    assert not left, f"processes outlived their servers: {left}"
    assert not (_listening(dagster_port) or _listening(mlflow_port)), "a server still listens on its port"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = str(CHROMIUM)
    # --no-sandbox: Chromium refuses to run as root with its sandbox (containers, CI); /dev/shm is
    # often 64 MB there, too small for its renderer.
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def _find(driver: WebDriver, xpath: str) -> WebElement | None:
    try:
        return driver.find_element(By.XPATH, xpath)
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def _click(driver: WebDriver, xpath: str) -> bool:
    """Click the element once it is enabled; False while it is missing, disabled or re-rendering
    (the pages render again as their queries answer)."""
    try:
        element = driver.find_element(By.XPATH, xpath)
        if not element.is_enabled():
            return False
        element.click()
        return True
    except (NoSuchElementException, StaleElementReferenceException, ElementClickInterceptedException):
        return False


def _page_text_with(driver: WebDriver, text: str) -> str | None:
    body = _find(driver, "//body")
    try:
        page = body.text if body else ""
    except StaleElementReferenceException:
        return None
    return page if text in page else None


def _metadata_row(label: str) -> str:
    """XPath of the metadata table row whose label cell reads ``label``."""
    return f"//tr[td[normalize-space()='{label}']]"


def _launched_run(driver: WebDriver, base: str) -> str | None:
    """The id of the run the UI's toast announces (``Launched run <first 8 characters>``)."""
    short = re.search(r"Launched run\s+([0-9a-f]{8})", _page_text_with(driver, "Launched run") or "")
    if not short:
        return None
    runs = graphql(base, RUNS)["runsOrError"]["results"]
    return next((r["runId"] for r in runs if r["runId"].startswith(short.group(1))), None)


def _run_status(base: str, run_id: str) -> str | None:
    runs = graphql(base, RUNS)["runsOrError"]["results"]
    status = next(r["status"] for r in runs if r["runId"] == run_id)
    return status if status in TERMINAL else None


@needs_chromium
def test_materialize_from_the_ui_shows_the_loss_curve_and_the_mlflow_run(servers, browser, tmp_path):
    started = time.monotonic()
    page = f"{servers.dagster}/assets/{ASSET}"
    browser.get(page)
    _wait("the Materialize button", lambda: _click(browser, "//button[normalize-space()='Materialize']"),
          UI_S, servers.logs, every=0.5)
    run_id = _wait("the UI's 'Launched run' toast", lambda: _launched_run(browser, servers.dagster),
                   UI_S, servers.logs, every=0.5)
    # The wait reads the run's status from Dagster's GraphQL: a failure ends it at once.
    status = _wait(f"run {run_id} to finish", lambda: _run_status(servers.dagster, run_id), RUN_S, servers.logs,
                   every=2.0)
    assert status == "SUCCESS", f"run {run_id} ended {status}\n{_tail(servers.logs / 'dagster.log')}"
    built = time.monotonic() - started

    browser.get(page)  # the page as a user opens it after the run
    _wait("the loss_curve metadata", lambda: _click(browser, _metadata_row("loss_curve") + "//a"), UI_S,
          servers.logs, every=0.5)
    image = _wait("the loss curve in its dialog", lambda: _find(browser, "//*[@role='dialog']//img"), UI_S,
                  servers.logs, every=0.5)
    scheme, _, data = image.get_attribute("src").partition(",")
    assert scheme == "data:image/png;base64"
    # The browser decoded the PNG: its width is the one the file's IHDR header states (a broken image
    # has none), and that of a real figure.
    png = base64.b64decode(data)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    (png_width,) = struct.unpack(">I", png[16:20])
    width = _wait("the plot to decode", lambda: browser.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", image), UI_S, servers.logs, every=0.5)
    assert width == png_width and 300 <= width <= PLOT_MAX_PX, (width, png_width)
    # The dialog fades in: photograph it once it and everything around the plot is opaque.
    _wait("the dialog's fade-in", lambda: browser.execute_script(OPACITY, image) == 1, UI_S, servers.logs, every=0.2)
    shot = tmp_path / f"{ASSET}-loss_curve.png"
    assert browser.save_screenshot(str(shot))
    print(f"\nscreenshot: {shot}")
    _click(browser, "//*[@role='dialog']//button[normalize-space()='Close']")

    mlflow_run_id = re.search(r"\b[0-9a-f]{32}\b", _find(browser, _metadata_row("mlflow_run_id")).text).group()
    link = _find(browser, _metadata_row("mlflow_run") + "//a").get_attribute("href")
    assert re.fullmatch(rf"{re.escape(servers.mlflow)}/#/experiments/\d+/runs/{mlflow_run_id}", link), link

    browser.get(link)
    # The run page: the run's name (the asset), its id, its status, and the Dagster run that opened it
    # (tag dagster.run_id, shown cut after ~30 characters).
    body = _wait("the MLflow run page", lambda: _page_text_with(browser, mlflow_run_id), UI_S, servers.logs)
    assert ASSET in body and "Finished" in body and run_id[:18] in body, body[:2000]
    mlflow_shot = tmp_path / f"{ASSET}-mlflow.png"
    assert browser.save_screenshot(str(mlflow_shot))
    print(f"screenshot: {mlflow_shot}")
    print(f"built from the UI in {built:.0f} s, whole test body {time.monotonic() - started:.0f} s")
