"""The thank-you page follows its message live: a real headless Chromium runs outcome.js.

Chromium's virtual time runs the page's timers at once; the state changes when the page first asks
the status URL, so what the dumped page shows can only come from the script.
"""

import os
import shutil
import subprocess

import pytest
from django.core.signals import request_started

from relieve_app.models import MailOutcome

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM and not os.environ.get("CI"), reason="needs chromium (Debian: apt-get install chromium)"
    ),
]


def rendered(url):
    """The page's DOM after its scripts ran for ten seconds of virtual time."""
    assert CHROMIUM, "CI needs chromium for this test: apt-get install chromium"
    argv = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=10000",
        "--dump-dom",
        url,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.fixture
def on_first_status_request():
    """Call `change()` when the page first asks the status endpoint, before the endpoint answers."""
    receivers = []

    def install(reference, change):
        def receiver(sender, environ, **kwargs):
            if environ["PATH_INFO"] == f"/contact/status/{reference}/" and not asked:
                asked.append(True)
                change()

        asked = []
        request_started.connect(receiver, weak=False)
        receivers.append(receiver)
        return asked

    yield install
    for receiver in receivers:
        request_started.disconnect(receiver)


def message():
    return MailOutcome.objects.create(
        emitter="ada@example.com", recipient="me@example.com", subject="Hi", body="b" * 40
    )


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [("sent", "", "has been sent"), ("failed", "550 5.1.1 no such user", "the mail server refused it")],
)
def test_the_page_turns_from_queued_to_the_outcome_without_a_reload(
    live_server, on_first_status_request, status, error, words
):
    outcome = message()
    update = MailOutcome.objects.filter(pk=outcome.pk).update
    asked = on_first_status_request(outcome.reference, lambda: update(status=status, error=error))

    page = rendered(f"{live_server.url}/contact/thanks/{outcome.reference}/")

    assert asked, "the page never asked for its status"
    assert f'data-status="{status}"' in page
    assert words in page
    assert "queued" not in page.split('id="relieve-status"')[1].split("</p>")[0]
