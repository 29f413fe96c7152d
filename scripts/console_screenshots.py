"""Screenshots of the web console for the docs (docs/img/console-jobs.png, console-job.png).

Starts `eraser serve` in a scratch folder, runs a few jobs on the `demo` model (the ring erasure
with the recommended settings, a fast ESD job, a cancelled one, one still training) and photographs
the jobs list and the finished ring job's page in headless Chromium. About five minutes on two
CPU cores. Usage: python scripts/console_screenshots.py [OUT_DIR]
"""

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from local_server import serving

from client import EraserClient
from core.toyworld.paths import RECOMMENDED_FILE

WIDTH = 1366


def ring_job() -> dict[str, Any]:
    recommended = json.loads(RECOMMENDED_FILE.read_text())
    return {
        "model": "demo",
        "concepts": ["ring"],
        "method": "ap",
        "train_method": recommended["train_method"],
        "hyperparameters": recommended["hyperparameters"],
        "sample_prompts": ["a green ring", "a red ring", "a green circle", "a blue square"],
        "metadata": {"ticket": "SAFE-42"},
    }


FAST = {"iterations": 20, "ddim_steps": 4, "k_closest": 50, "num_centers": 5}


def browser() -> webdriver.Chrome:
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--window-size={WIDTH},860", "--hide-scrollbars",
    ):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def shoot(driver: webdriver.Chrome, url: str, target: Path, full: bool) -> None:
    driver.get(url)
    time.sleep(1.5)
    height = 860
    if full:
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(WIDTH, height)
    time.sleep(0.5)
    driver.save_screenshot(str(target))
    driver.set_window_size(WIDTH, 860)
    print(f"wrote {target}")


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, serving(Path(scratch)) as server:
        key = server.issue_key("safety-team")
        with EraserClient(server.url, key) as eraser:
            esd = eraser.create_job(
                {"model": "demo", "concepts": ["red"], "method": "esd", "hyperparameters": FAST,
                 "sample_prompts": ["a red star", "a blue star"]}
            )  # fmt: skip
            cancelled = eraser.create_job(
                {"model": "demo", "concepts": ["star"], "hyperparameters": FAST}
            )
            eraser.cancel(cancelled)
            ring = eraser.create_job(ring_job())
            for job in (esd, ring):
                print(f"waiting for {job.concepts} ({job.id})")
                finished = eraser.wait(job, timeout=1800)
                if finished.status != "succeeded":
                    raise SystemExit(f"job {job.id} ended {finished.status}: {finished.error}")
            running = eraser.create_job(
                {"model": "demo", "concepts": ["triangle"], "hyperparameters": {"iterations": 400}}
            )
            while (current := eraser.job(running)).progress is None:
                if current.status.is_terminal:
                    raise SystemExit(f"job {running.id} ended {current.status}")
                time.sleep(1)
            time.sleep(4)
            driver = browser()
            try:
                driver.get(f"{server.url}/ui/signin")
                driver.find_element(By.ID, "api_key").send_keys(key)
                driver.find_element(By.ID, "signin").click()
                shoot(driver, f"{server.url}/ui/jobs", out / "console-jobs.png", full=False)
                shoot(driver, f"{server.url}/ui/jobs/{ring.id}", out / "console-job.png", True)
            finally:
                driver.quit()
                eraser.cancel(running)
    return 0


if __name__ == "__main__":
    sys.exit(main())
