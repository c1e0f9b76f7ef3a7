"""The rating page in a real browser: Chromium (Debian's package) driven by Selenium,
against the real server that `storytelling rate` starts."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from story_env.run.cli import main
from story_env.run.rating import RatingDB

pytestmark = pytest.mark.slow

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
HOSTILE = '<script>alert("x")</script><b>bold</b><img src=x onerror=alert(1)>'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(db: Path) -> tuple[subprocess.Popen, str]:
    """`storytelling rate --db DB` on a free port; waits until it answers."""
    port = _free_port()
    cmd = [sys.executable, "-m", "story_env.run.cli", "rate", "--db", str(db), "--port", str(port)]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the server exited: {server.stdout.read()}")
        try:
            urllib.request.urlopen(url + "/results.json", timeout=2).read()
            return server, url
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise AssertionError("the server did not answer in 120 s")


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (shutil.which(CHROMIUM) and shutil.which(DRIVER)):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _sources(tmp_path: Path) -> list[str]:
    paths = []
    for letter, extra in (("A", ""), ("B", HOSTILE)):
        texts = [f"{letter} wrote story {i}. {extra}" for i in range(3)]
        path = tmp_path / f"{letter}.json"
        path.write_text(json.dumps({"seed": 0, "teacher": "heuristic", "texts": texts}))
        paths.append(str(path))
    return paths


def test_vote_with_keys_and_clicks_reload_resume_and_read_the_results(browser, tmp_path):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    db = tmp_path / "ratings.db"
    assert main(["rate", *_sources(tmp_path), "--db", str(db), "--prepare-only"]) == 0
    # a vote submits a form: the page it was found on may be replaced between
    # finding an element and reading it, so a stale element means "look again"
    wait = WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,))

    def progress_says(text: str) -> None:
        wait.until(
            lambda d: (
                d.execute_script("return document.readyState") == "complete"
                and text in d.find_element(By.ID, "progress").text
            )
        )

    def press(key: str) -> None:
        browser.find_element(By.TAG_NAME, "body").send_keys(key)

    server, url = _serve(db)
    try:
        browser.get(url + "/")
        browser.find_element(By.ID, "rater").send_keys("alice")
        browser.find_element(By.ID, "start").click()
        progress_says("pair 1 of 3")
        # the story holding <script> and HTML shows as text: no element, no alert
        stories = (
            browser.find_element(By.ID, "left-story").text
            + browser.find_element(By.ID, "right-story").text
        )
        assert HOSTILE in stories
        assert browser.find_elements(By.CSS_SELECTOR, ".story b, .story img, .story script") == []
        assert browser.execute_script("return document.scripts.length") == 1
        # blind: no link to the live results, no story id in the form, only opaque tokens
        assert browser.find_elements(By.CSS_SELECTOR, 'a[href^="/results"]') == []
        hidden = browser.find_elements(By.CSS_SELECTOR, "#vote-form input[type=hidden]")
        assert sorted(e.get_attribute("name") for e in hidden) == ["csrf", "pair", "rater"]
        press("1")  # left
        progress_says("pair 2 of 3")
        press(Keys.ARROW_RIGHT)  # right
        progress_says("pair 3 of 3")
        browser.refresh()  # a reload shows the same pair, nothing stored twice
        progress_says("pair 3 of 3")
    finally:
        _stop(server)
    server, url = _serve(db)  # a restart: the session carries on where it stopped
    try:
        browser.get(url + "/")  # the rater's cookie brings them back
        progress_says("pair 3 of 3")
        assert browser.find_element(By.ID, "rater-name").text == "alice"
        browser.find_element(By.ID, "choice-tie").click()
        wait.until(lambda d: "All done" in d.page_source)
        browser.get(url + "/results")
        progress_says("3 votes by 1 raters on 3 pairs")
        assert "Bradley-Terry" in browser.page_source
        rows = browser.find_elements(By.CSS_SELECTOR, "#win-rates tr")
        assert len(rows) == 2 and "A.json" in rows[1].text
    finally:
        _stop(server)
    votes = RatingDB(db).votes()
    assert [(v["rater"], v["choice"]) for v in votes] == [
        ("alice", "left"),
        ("alice", "right"),
        ("alice", "tie"),
    ]
    assert len({v["pair"] for v in votes}) == 3
