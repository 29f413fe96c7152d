"""The web console in a real browser (Debian's headless Chromium, driven by Selenium) against a
real `eraser serve`: sign in, submit from the form, watch the job finish live, see its grid and
loss curves, download an artifact, cancel a second job, sign out; another principal sees nothing
of it; a form without its CSRF token is refused."""

import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fast_job import FAST_HYPERPARAMETERS
from local_server import LocalServer
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from client import EraserClient

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
JOB_TIMEOUT_S = 240
ADVANCED = {key: value for key, value in FAST_HYPERPARAMETERS.items() if key != "iterations"}

# The page redraws parts of itself live: an element found a moment ago may be replaced.
_REDRAWN = (StaleElementReferenceException,)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser-downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--window-size=1366,900",
    ):  # fmt: skip
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(browser: WebDriver, server: LocalServer, key: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{server.url}/ui")
    assert browser.current_url.endswith("/ui/signin")
    browser.find_element(By.ID, "api_key").send_keys(key)
    browser.find_element(By.ID, "signin").click()
    WebDriverWait(browser, 20, ignored_exceptions=_REDRAWN).until(
        lambda b: b.current_url.endswith("/ui/jobs")
    )


def fill_job_form(browser: WebDriver, server: LocalServer, label: str) -> str:
    """Submit the form with the fast job's settings; returns the new job's id."""
    browser.get(f"{server.url}/ui/jobs/new")
    browser.find_element(By.ID, "concepts").send_keys("ring")
    browser.find_element(By.ID, "iterations").send_keys(str(FAST_HYPERPARAMETERS["iterations"]))
    browser.find_element(By.ID, "sample_prompts").send_keys(f"a green ring\na blue square {label}")
    browser.find_element(By.TAG_NAME, "summary").click()
    browser.find_element(By.ID, "hyperparameters").send_keys(json.dumps(ADVANCED))
    browser.find_element(By.ID, "submit-job").click()
    WebDriverWait(browser, 20, ignored_exceptions=_REDRAWN).until(
        lambda b: re.search(r"/ui/jobs/[0-9a-f-]{36}$", b.current_url)
    )
    return browser.current_url.rsplit("/", 1)[-1]


def test_sign_in_submit_watch_download_cancel_sign_out(
    browser: WebDriver, server: LocalServer, downloads: Path
) -> None:
    key = server.issue_key("console-alice")
    sign_in(browser, server, key)
    session_cookie = browser.get_cookie("eraser_session")
    assert session_cookie is not None and session_cookie["httpOnly"]
    assert session_cookie["sameSite"] == "Lax"
    assert key not in browser.page_source and key not in browser.current_url
    assert "eraser_session" not in browser.execute_script("return document.cookie")

    first = fill_job_form(browser, server, "first")
    watcher = browser.current_window_handle
    # The page must follow the job live: mark this document (a reload would lose the mark) and
    # record every text the progress line shows.
    browser.execute_script(
        """window.__sameDocument = true; window.__shown = [];
        const line = document.getElementById("progress-text");
        new MutationObserver(() => window.__shown.push(line.textContent))
            .observe(line, {childList: true, characterData: true, subtree: true});"""
    )
    # A second job, from a second tab: it queues behind the first; cancel it from its page.
    browser.switch_to.new_window("tab")
    second = fill_job_form(browser, server, "second")
    browser.find_element(By.ID, "cancel-job").click()
    WebDriverWait(browser, 30, ignored_exceptions=_REDRAWN).until(
        lambda b: (
            b.find_element(By.CSS_SELECTOR, "#status .badge").text.lower()
            in {"cancelled", "cancelling"}
        )
    )
    with EraserClient(server.url, key) as eraser:
        assert eraser.wait(second, timeout=JOB_TIMEOUT_S).status == "cancelled"
    browser.close()
    browser.switch_to.window(watcher)

    deadline = time.monotonic() + JOB_TIMEOUT_S
    while browser.find_element(By.ID, "live").get_attribute("data-finished") != "true":
        assert time.monotonic() < deadline, "the job page never showed the job finishing"
        time.sleep(0.3)
    assert browser.execute_script("return window.__sameDocument") is True, "the page reloaded"
    shown = browser.execute_script("return window.__shown")
    total = FAST_HYPERPARAMETERS["iterations"]
    assert f"step {total} / {total}" in shown  # training, then the evaluation stage's steps
    assert re.fullmatch(r"step (\d+) / \1", shown[-1]), shown
    assert len(shown) >= 2, f"the progress bar did not move step by step: {shown}"
    assert browser.find_element(By.CSS_SELECTOR, "#status .badge").text.lower() == "succeeded"
    progress = browser.find_element(By.ID, "progress")
    assert progress.get_attribute("value") == progress.get_attribute("max")  # the last stage
    assert browser.find_element(By.ID, "eta").text == "done"

    # The results panel arrived without a reload: grid loaded, loss curves drawn.
    grid = browser.find_element(By.ID, "grid")
    WebDriverWait(browser, 20, ignored_exceptions=_REDRAWN).until(
        lambda b: b.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", grid
        )
    )
    assert browser.execute_script("return arguments[0].naturalHeight", grid) > 0
    curves = browser.find_elements(By.CSS_SELECTOR, "svg.plot polyline.smooth")
    assert len(curves) == 2
    points = curves[0].get_attribute("points") or ""
    assert len(points.split()) == FAST_HYPERPARAMETERS["iterations"]
    protected = browser.find_elements(By.CSS_SELECTOR, "#adversarial table.bars td.word")
    assert protected, "AP's protected concepts are not shown"

    # Download an artifact by its link; it is byte-identical to what the manifest lists.
    browser.find_element(By.LINK_TEXT, "delta.safetensors").click()
    target = downloads / "delta.safetensors"
    WebDriverWait(browser, 30, ignored_exceptions=_REDRAWN).until(lambda _: target.exists())
    with EraserClient(server.url, key) as eraser:
        manifest = {a.name: a for a in eraser.artifacts(first)}
    WebDriverWait(browser, 30, ignored_exceptions=_REDRAWN).until(
        lambda _: target.stat().st_size == manifest["delta.safetensors"].bytes
    )
    assert hashlib.sha256(target.read_bytes()).hexdigest() == manifest["delta.safetensors"].sha256

    # The list shows both, with their states.
    browser.get(f"{server.url}/ui/jobs")
    rows = {
        row.get_attribute("data-job"): row.find_element(By.CSS_SELECTOR, ".badge").text.lower()
        for row in browser.find_elements(By.CSS_SELECTOR, "tr.job-row")
    }
    assert rows == {first: "succeeded", second: "cancelled"}

    # Sign out: back to the sign-in page, and the old cookie opens nothing any more.
    browser.find_element(By.ID, "signout").click()
    WebDriverWait(browser, 20, ignored_exceptions=_REDRAWN).until(
        lambda b: b.current_url.endswith("/ui/signin")
    )
    browser.add_cookie({"name": "eraser_session", "value": session_cookie["value"], "path": "/ui"})
    browser.get(f"{server.url}/ui/jobs/{first}")
    assert browser.current_url.endswith("/ui/signin")


def test_another_principal_sees_none_of_the_first_ones_jobs(
    browser: WebDriver, server: LocalServer
) -> None:
    alice = server.issue_key("console-owner")
    with EraserClient(server.url, alice) as eraser:
        job = eraser.cancel(eraser.create_job({"model": "demo", "concepts": ["ring"]}))
    sign_in(browser, server, server.issue_key("console-other"))
    assert browser.find_elements(By.CSS_SELECTOR, "tr.job-row") == []
    browser.get(f"{server.url}/ui/jobs/{job.id}")
    assert "No such job" in browser.page_source
    status = httpx.get(
        f"{server.url}/ui/jobs/{job.id}/artifacts/samples.png",
        cookies={"eraser_session": browser.get_cookie("eraser_session")["value"]},
    ).status_code
    assert status == 404


def _signed_in_http(server: LocalServer, key: str) -> tuple[httpx.Client, str]:
    """A plain HTTP client signed in through the form; returns it and the page's CSRF token."""
    http = httpx.Client(base_url=server.url, follow_redirects=True, timeout=30)
    page = http.get("/ui/signin").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    http.post("/ui/signin", data={"api_key": key, "csrf_token": token.group(1)})
    form = http.get("/ui/jobs/new").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    return http, csrf.group(1)


def test_form_posts_without_the_csrf_token_are_refused(server: LocalServer) -> None:
    key = server.issue_key("console-csrf")
    http, csrf = _signed_in_http(server, key)
    form = {"model": "demo", "concepts": "ring", "iterations": "1"}
    try:
        for token in (None, "forged"):
            data = form | ({"csrf_token": token} if token else {})
            refused = http.post("/ui/jobs", data=data)
            assert refused.status_code == 403 and "CSRF" in refused.text
        signout = http.post("/ui/signout", data={})
        assert signout.status_code == 403  # not signed out by a forged form either
        assert http.get("/ui/jobs").url.path == "/ui/jobs"
    finally:
        http.close()
    with EraserClient(server.url, key) as eraser:
        assert list(eraser.jobs()) == []
    # Nor does a sign-in form work without its token (login CSRF).
    anonymous = httpx.post(f"{server.url}/ui/signin", data={"api_key": key})
    assert anonymous.status_code == 403 and "eraser_session" not in anonymous.cookies
    assert csrf  # the real token was there to be sent
