"""The pages in a real browser (headless Chromium through Selenium), for what the test client cannot
show: that a browser sends the cookie back and names our origin on our own forms, and that the
page's Content-Security-Policy lets its own stylesheet in. (The first such run found that
``Referrer-Policy: no-referrer`` made Chromium send ``Origin: null``, and every form was refused.)

Needs Debian's ``chromium`` and ``chromium-driver``; without them these tests skip, unless
``ACCESSREVIEW_BROWSER_TESTS=required`` (as ``.ci/run`` sets), when they fail instead.
"""

from __future__ import annotations

import os
import shutil
import threading

import pytest
from werkzeug.serving import make_server

from test_campaigns import directory  # noqa: F401 (a fixture)
from test_web import campaign, links_in, mail, owen_items  # noqa: F401 (campaign, mail: fixtures)

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser():
    try:
        from selenium import webdriver
    except ImportError:
        webdriver = None
    if webdriver is None or not CHROMIUM or not DRIVER:
        reason = "needs selenium and Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        if os.environ.get("ACCESSREVIEW_BROWSER_TESTS") == "required":
            pytest.fail(reason)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # As root, in a sandbox with no network: no sandbox of its own, no calls home.
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


@pytest.fixture
def served(app):
    """The app on a real loopback port, as the browser (and the e-mailed links) reach it."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["PUBLIC_URL"] = url
    yield url
    server.shutdown()
    thread.join()


def press(browser, button) -> None:
    """Click a form's button and wait for the page it leads to (a click returns before that loads).

    Asked about the old page mid-navigation, Chromium may answer with a plain inspector error ("Node
    with given id does not belong to the document") instead of "stale"; that is asked again."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    page = browser.find_element(By.TAG_NAME, "html")
    button.click()
    WebDriverWait(browser, 10, ignored_exceptions=(WebDriverException,)).until(
        expected_conditions.staleness_of(page))


def test_a_reviewer_signs_in_by_email_and_decides_in_a_browser(client, lead, campaign, mail, served,  # noqa: F811
                                                               browser):
    from selenium.webdriver.common.by import By

    queue = f"{served}/ui/reviews?campaign={campaign['id']}"
    browser.get(queue)
    assert "/ui/sign-in" in browser.current_url
    browser.find_element(By.ID, "email").send_keys("owen@example.com")
    press(browser, browser.find_element(By.XPATH, "//button[text()='E-mail me a sign-in link']"))
    assert "Check your e-mail" in browser.find_element(By.TAG_NAME, "h1").text

    browser.get(links_in(mail[-1][1])[0])
    press(browser, browser.find_element(By.XPATH, "//main//button[text()='Sign in']"))
    assert browser.current_url == queue

    cat = owen_items(client, lead, campaign)[("user:cat", "member", "organization:acme")]
    item = browser.find_element(By.ID, f"item-{cat['id']}")
    item.find_element(By.CSS_SELECTOR, "input[value=revoke]").click()
    item.find_element(By.NAME, "justification").send_keys("left in January")
    press(browser, item.find_element(By.XPATH, ".//button[text()='Record decision']"))
    assert f"Saved for item {cat['id']}." in browser.find_element(By.CSS_SELECTOR, "[role=status]").text
    state = client.get(f"/v1/review-items/{cat['id']}", headers=lead).get_json()
    assert (state["decision"], state["decided_by"]) == ("revoke", "user:owen")

    owens = owen_items(client, lead, campaign)
    ticked = [owens[("user:ann", "editor", "project:p1")]["id"], owens[("group:team", "viewer", "project:p1")]["id"]]
    for item_id in ticked:  # boxes in each item's card, sent by the one form below them (form="bulk")
        browser.find_element(By.CSS_SELECTOR, f"#item-{item_id} input[name=items]").click()
    bulk = browser.find_element(By.ID, "bulk")
    bulk.find_element(By.CSS_SELECTOR, "input[value=keep]").click()
    press(browser, bulk.find_element(By.XPATH, ".//button[text()='Decide the ticked items']"))
    assert "Saved 2 decisions." in browser.find_element(By.CSS_SELECTOR, "[role=status]").text
    assert {client.get(f"/v1/review-items/{i}", headers=lead).get_json()["decision"] for i in ticked} == {"keep"}

    stylesheet_applied = browser.execute_script(
        "return getComputedStyle(document.querySelector('article.item')).borderTopStyle")
    assert stylesheet_applied == "solid", "the page's own stylesheet is let in"
    assert not [entry for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]]

    press(browser, browser.find_element(By.XPATH, "//header//button[text()='Sign out']"))
    assert "/ui/sign-in" in browser.current_url
    browser.get(queue)
    assert "/ui/sign-in" in browser.current_url, "signed out: the queue asks to sign in again"
