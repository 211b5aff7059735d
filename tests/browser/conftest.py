"""Browser tests: Playwright drives a real Chromium against pytest-django's live server.

Chromium comes from the system (Debian's ``chromium`` package, or RELIEVE_CHROMIUM=/path): Playwright
cannot download its own here. Without it the tests are skipped on a laptop with the command to run,
and fail in CI (CI=true), where they must run. Screenshots land in var/screenshots/.
"""

import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import master  # noqa: F401 - the real runrelieve, for the dashboard

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTALL_HINT = "install Chromium (Debian/Ubuntu: sudo apt-get install chromium) or set RELIEVE_CHROMIUM=/path"


def chromium_path():
    configured = os.environ.get("RELIEVE_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module: Playwright's sync API keeps an event loop running in this thread
    while it is open, which must be gone before the tests that call asyncio.run() themselves."""
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests need Chromium in CI: {INSTALL_HINT}")
        pytest.skip(f"no Chromium found: {INSTALL_HINT}")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)  # a loaded machine: expectations poll, they do not sleep
    # Django's ORM refuses to run beside a running event loop unless told the test is synchronous.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1366, "height": 900}, base_url=live_server.url)
    context.set_default_timeout(20_000)  # a loaded machine; every wait is an expectation, not a sleep
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def shot(page, request):
    """``shot("name")`` saves a full-page PNG as var/screenshots/<test>-<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name):
        path = SCREENSHOTS / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def admin_page(page, admin_user):
    """A page logged in to the admin as a superuser, through the login form."""
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    return page
