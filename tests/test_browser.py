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
from pathlib import Path

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


def centred(browser, element):
    """The element scrolled to the middle of the window: the queue's ticked-items bar sits at the
    bottom of the window, where a click of Selenium's (which scrolls no further than needed) lands."""
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    return element


def press(browser, button) -> None:
    """Click a form's button and wait for the page it leads to (a click returns before that loads).

    Asked about the old page mid-navigation, Chromium may answer with a plain inspector error ("Node
    with given id does not belong to the document") instead of "stale"; that is asked again."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    page = browser.find_element(By.TAG_NAME, "html")
    centred(browser, button).click()
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
    centred(browser, item.find_element(By.CSS_SELECTOR, "input[value=revoke]")).click()
    item.find_element(By.NAME, f"justification-{cat['id']}").send_keys("left in January")
    press(browser, item.find_element(By.XPATH, ".//button[text()='Record decision']"))
    assert f"Saved for item {cat['id']}." in browser.find_element(By.CSS_SELECTOR, "[role=status]").text
    state = client.get(f"/v1/review-items/{cat['id']}", headers=lead).get_json()
    assert (state["decision"], state["decided_by"]) == ("revoke", "user:owen")

    owens = owen_items(client, lead, campaign)
    ticked = [owens[("user:ann", "editor", "project:p1")]["id"], owens[("group:team", "viewer", "project:p1")]["id"]]
    for item_id in ticked:  # boxes in each item's card, sent by the one form below them (form="bulk")
        centred(browser, browser.find_element(By.CSS_SELECTOR, f"#item-{item_id} input[name=items]")).click()
    bulk = browser.find_element(By.ID, "bulk")
    centred(browser, bulk.find_element(By.CSS_SELECTOR, "input[value=keep]")).click()
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


# -- each persona's journey, at a desk and on a phone ----------------------------------------------------

WIDTHS = (1366, 390)


SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"


@pytest.fixture
def screenshots():
    """Where the walks leave their screenshots, to be looked at after the run: artifacts/screenshots/
    in the working tree (git-ignored; the run's folder, which CI leaves in its clone), or
    ACCESSREVIEW_SCREENSHOTS_DIR."""
    path = Path(os.environ.get("ACCESSREVIEW_SCREENSHOTS_DIR") or SCREENSHOTS)
    path.mkdir(parents=True, exist_ok=True)
    return path


def paste_token(browser, served, headers) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(f"{served}/ui/sign-in")
    browser.find_element(By.ID, "token").send_keys(headers["Authorization"].split()[1])
    press(browser, browser.find_element(By.XPATH, "//form[contains(@action, '/sign-in/token')]//button"))


def look(browser, folder: Path, name: str, scroll: bool = True, at=None) -> None:
    """The page at each width (from its top, or with ``at`` in the middle), saved; on a phone it must
    not scroll sideways."""
    for width in WIDTHS:
        browser.set_window_size(width, 900)
        if at is not None:
            centred(browser, at)
        elif scroll:
            browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(folder / f"{name}-{width}.png"))
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{name} scrolls sideways by {overflow} px at {width} px wide"
    browser.set_window_size(1366, 900)


def test_a_reviewer_walks_the_queue_on_a_desk_and_a_phone(app, client, lead, campaign, token_for, served,  # noqa: F811
                                                         browser, screenshots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    paste_token(browser, served, token_for("user:owen"))
    browser.get(f"{served}/ui/reviews")
    look(browser, screenshots, "reviewer-queue")
    browser.set_window_size(390, 900)
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight / 2)")
    browser.save_screenshot(str(screenshots / "reviewer-queue-middle-390.png"))
    browser.set_window_size(1366, 900)
    owens = owen_items(client, lead, campaign)
    ann = owens[("user:ann", "editor", "project:p1")]
    card = browser.find_element(By.ID, f"item-{ann['id']}")
    assert card.find_element(By.NAME, "items").get_attribute("aria-label").startswith(f"Tick item {ann['id']}: user:ann")
    centred(browser, card.find_element(By.CSS_SELECTOR, "input[value=revoke]")).click()
    press(browser, card.find_element(By.CSS_SELECTOR, "button[name=record]"))
    field = browser.find_element(By.ID, f"justification-{ann['id']}")
    assert field.get_attribute("aria-invalid") == "true"
    beside = field.find_element(By.XPATH, "following-sibling::*[1]")
    assert "a justification is required to revoke" in beside.text, "the problem is shown beside its field"
    look(browser, screenshots, "reviewer-error", at=field)

    browser.get(f"{served}/ui/reviews")
    press(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "Tick all"))
    ticked = browser.find_elements(By.CSS_SELECTOR, "input[name=items]:checked")
    assert len(ticked) == len(owens)

    app.config["PAGE_SIZE"] = 2  # three pages: the items on the others are accepted too, from the first
    browser.get(f"{served}/ui/reviews")
    assert "Page 1 of 3" in browser.find_element(By.CSS_SELECTOR, "nav.pager").text
    centred(browser, browser.find_element(By.ID, "matching")).click()
    bar = browser.execute_script(
        "return getComputedStyle(document.querySelector('.ticked-count'), '::after').content")
    assert bar == f'"all {len(owens)} that match"', "the bar under the page says what the buttons act on"
    press(browser, browser.find_element(By.XPATH, "//button[starts-with(text(), 'Accept the recommendation')]"))
    look(browser, screenshots, "reviewer-accept-confirm")
    acceptable = [i for i in owens.values() if i["recommendation"] in ("keep", "revoke")]
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith(f"Accept the recommendation for {len(acceptable)} item")
    outcomes = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "td[data-label=Outcome]")]
    assert sorted(outcomes) == sorted(i["recommendation"] for i in acceptable), "each item's outcome, before"
    press(browser, browser.find_element(By.XPATH, "//main//button[starts-with(text(), 'Accept ')]"))
    assert f"Saved {len(acceptable)} decision" in browser.find_element(By.CSS_SELECTOR, "[role=status]").text
    for item in acceptable:
        state = client.get(f"/v1/review-items/{item['id']}", headers=lead).get_json()
        assert (state["decision"], state["justification"]) == (item["recommendation"], item["recommendation_reason"])
    browser.get(f"{served}/ui/review-items/{ann['id']}")
    look(browser, screenshots, "reviewer-item")

    browser.get(f"{served}/ui/reviews")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    skip = browser.switch_to.active_element
    assert (skip.text, skip.get_attribute("href")) == ("Skip to the content", f"{served}/ui/reviews#main"), \
        "the first Tab reaches the skip link"
    look(browser, screenshots, "reviewer-skip-link", scroll=False)
    skip.send_keys(Keys.ENTER)
    assert browser.switch_to.active_element.get_attribute("id") == "main", "and it moves focus to the content"

    browser.find_element(By.CSS_SELECTOR, "a[aria-label='Sign out everywhere…']").click()
    assert "You are signed out of this browser too" in browser.find_element(By.TAG_NAME, "main").text
    look(browser, screenshots, "reviewer-sign-out-everywhere")
    press(browser, browser.find_element(By.XPATH, "//main//button[text()='Sign out everywhere']"))
    assert "You are signed out everywhere" in browser.find_element(By.CSS_SELECTOR, "[role=status]").text
    browser.get(f"{served}/ui/reviews")
    assert "/ui/sign-in" in browser.current_url


def test_a_security_lead_an_auditor_and_an_admin_walk_their_pages(client, lead, campaign, served, browser, auditor,  # noqa: F811
                                                                  admin, screenshots):
    from selenium.webdriver.common.by import By

    paste_token(browser, served, lead)
    item = next(iter(owen_items(client, lead, campaign).values()))
    for name, path in (("lead-campaigns", "/ui/campaigns"), ("lead-campaign", f"/ui/campaigns/{campaign['id']}"),
                       ("lead-item", f"/ui/review-items/{item['id']}"), ("lead-holds", "/ui/holds"),
                       ("lead-access", "/ui/access?resource=project:p1"),
                       ("lead-definition-new", "/ui/campaign-definitions/new"),
                       ("lead-definition", f"/ui/campaign-definitions/{campaign['definition_id']}"),
                       ("lead-audit", "/ui/audit"), ("lead-decisions", "/ui/decisions")):
        browser.get(served + path)
        look(browser, screenshots, name)
    browser.set_window_size(390, 900)  # on a phone the navigation folds under "Menu"
    nav = browser.find_element(By.ID, "pages-nav")
    assert not nav.is_displayed()
    browser.find_element(By.CSS_SELECTOR, "label.menu-button").click()
    assert nav.find_element(By.LINK_TEXT, "Holds").is_displayed()
    browser.save_screenshot(str(screenshots / "lead-menu-open-390.png"))
    browser.set_window_size(1366, 900)
    assert nav.is_displayed()
    browser.get(f"{served}/ui/campaigns/{campaign['id']}")
    press(browser, browser.find_element(By.CSS_SELECTOR, "button[aria-label^='Remind user:owen now']"))
    assert "Reminder to user:owen put in the outbox" in browser.find_element(By.CSS_SELECTOR, "[role=status]").text
    browser.get(f"{served}/ui/campaigns")
    press(browser, browser.find_element(By.CSS_SELECTOR, "button[aria-label$=' now']"))
    assert "already reviews some of the same grants" in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    look(browser, screenshots, "lead-launch-confirm")
    client.post(f"/v1/campaigns/{campaign['id']}/close", headers=lead)  # signed off: its reports listed
    assert client.post(f"/v1/campaigns/{campaign['id']}/sign-off", json={"statement": "done"},
                       headers=lead).status_code in (200, 202)
    paste_token(browser, served, auditor)
    browser.get(served + "/ui/reports")
    assert browser.find_elements(By.CSS_SELECTOR, "main table tbody tr"), "a report is listed"
    for name, path in (("auditor-reports", "/ui/reports"), ("auditor-audit", "/ui/audit"),
                       ("auditor-campaign", f"/ui/campaigns/{campaign['id']}"),
                       ("auditor-decisions", "/ui/decisions")):
        browser.get(served + path)
        look(browser, screenshots, name)
    paste_token(browser, served, admin)
    browser.get(served + "/ui/tokens")
    look(browser, screenshots, "admin-tokens")
    own = admin["Authorization"].split()[1].split("_")[1]
    browser.get(f"{served}/ui/tokens/{own}/revoke")
    assert "This is the token you are signed in with." in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    look(browser, screenshots, "admin-token-revoke")
