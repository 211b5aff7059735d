"""The contact form in a real browser: its own validation, the server's 400, the thank-you page, the 429."""

import pytest
from playwright.sync_api import expect

from relieve_app.models import MailOutcome

pytestmark = pytest.mark.django_db(transaction=True)

BODY = "Hello, I would like to know more about your work and your rates."


@pytest.fixture(autouse=True)
def no_master(settings, tmp_path):
    """No master listens: the page must still accept messages (they wait for one)."""
    settings.RELIEVE_SOCKET = str(tmp_path / "none.sock")
    settings.CONTACT_RATE_LIMIT = ""


def test_the_browser_refuses_an_empty_or_malformed_form(page, shot):
    page.goto("/contact/")
    page.click("button[type=submit]")
    assert page.eval_on_selector("#id_emitter", "e => e.validity.valueMissing")
    page.fill("#id_emitter", "not an address")
    page.click("button[type=submit]")
    assert page.eval_on_selector("#id_emitter", "e => e.validity.typeMismatch")
    expect(page.locator("h1")).to_have_text("Contact")  # still the form: nothing was sent
    shot("refused")
    assert MailOutcome.objects.count() == 0


def test_the_server_answers_400_with_errors_beside_the_fields(page, shot):
    page.goto("/contact/")
    page.evaluate("document.querySelector('form').noValidate = true")  # what a script or old browser sends
    page.fill("#id_emitter", "ada@example")
    page.fill("#id_body", "too short")
    with page.expect_response("**/contact/") as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 400
    emitter = page.locator(".field", has=page.locator("#id_emitter"))
    body = page.locator(".field", has=page.locator("#id_body"))
    expect(emitter.locator(".errorlist")).to_contain_text("does not look like an email address")
    expect(body.locator(".errorlist")).to_contain_text("at least 30")
    expect(page.locator("#id_body")).to_have_value("too short")  # nothing typed is lost
    shot("errors")
    assert MailOutcome.objects.count() == 0


def test_a_valid_message_gets_the_thank_you_page(page, shot):
    page.goto("/contact/")
    page.fill("#id_emitter", "ada@example.org")
    page.fill("#id_subject", "A question")
    page.fill("#id_body", BODY)
    with page.expect_response("**/contact/**") as answer:
        page.click("button[type=submit]")
    assert answer.value.status in (202, 303)
    expect(page.locator("h1")).to_contain_text("Thank you")
    expect(page.locator("body")).to_contain_text("Your message has reached us")
    shot("thanks")
    outcome = MailOutcome.objects.get()
    assert (outcome.emitter, outcome.subject, outcome.status) == ("ada@example.org", "A question", "queued")


def test_too_many_messages_get_429_with_the_message_kept(page, shot, settings):
    settings.CONTACT_RATE_LIMIT = "1/m"
    for attempt in range(2):
        page.goto("/contact/")
        page.fill("#id_emitter", "ada@example.org")
        page.fill("#id_subject", f"message {attempt}")
        page.fill("#id_body", BODY)
        with page.expect_response("**/contact/**") as answer:
            page.click("button[type=submit]")
    assert answer.value.status == 429
    expect(page.locator("[role=alert]")).to_contain_text("too many messages")
    expect(page.locator("#id_subject")).to_have_value("message 1")
    shot("429")
    assert MailOutcome.objects.count() == 1
