"""Post/Redirect/Get: a form post lands on its own thank-you page, which a reload does not resend.

The page and the status endpoint are found by the message's unguessable reference alone, and tell
the visitor the state in plain words: never the message, its addresses or the raw SMTP reply.
"""

from pathlib import Path

import pytest
from django.contrib.staticfiles import finders

from relieve_app.contact import references
from relieve_app.models import MailOutcome

pytestmark = pytest.mark.django_db

URL = "/contact/"
VALID = {"emitter": "ada@example.com", "subject": "Private", "body": "Something only the owner may read."}
JSON_ACCEPT = {"Accept": "application/json"}


def message(**fields):
    return MailOutcome.objects.create(
        emitter="bob@example.com", recipient="me@example.com", subject="Bob's secret", body="b" * 40, **fields
    )


def test_reloading_the_thank_you_page_sends_nothing_again(client, master_socket):
    posted = client.post(URL, VALID)
    assert posted.status_code == 303

    pages = [client.get(posted["Location"]) for _ in range(3)]  # the first visit, then two reloads

    assert [page.status_code for page in pages] == [200, 200, 200]
    assert MailOutcome.objects.count() == 1


def test_the_thank_you_page_shows_the_reference_and_state_not_the_message(client, master_socket):
    posted = client.post(URL, VALID)
    outcome = MailOutcome.objects.get()

    page = client.get(posted["Location"])

    content = page.content.decode()
    assert outcome.reference in content
    assert "queued" in content
    for private in (VALID["emitter"], VALID["subject"], VALID["body"]):
        assert private not in content
    assert page["Referrer-Policy"] == "no-referrer"
    assert "no-store" in page["Cache-Control"]


def test_references_are_unguessable_and_distinct():
    made = {message().reference for _ in range(20)}

    assert len(made) == 20
    assert all(len(reference) == 32 for reference in made)


@pytest.mark.parametrize("path", ["thanks", "status"])
def test_the_sequential_id_or_a_made_up_reference_finds_nothing(client, path):
    outcome = message()

    last = "y" if outcome.reference.endswith("x") else "x"
    for guess in (str(outcome.pk), outcome.reference[:-1] + last, "x" * 32):
        response = client.get(f"{URL}{path}/{guess}/", headers=JSON_ACCEPT)
        assert response.status_code == 404
        assert response.json() == {"errors": {"__all__": ["No message has this reference."]}}


@pytest.mark.parametrize(
    ("status", "error", "final", "words"),
    [
        ("queued", "", False, "queued"),
        ("sending", "", False, "being sent"),
        ("retrying", "421 try later", False, "trying again"),
        ("sent", "", True, "has been sent"),
        ("failed", "bob@example.com: 550 5.1.1 no such mailbox at mx.internal", True, "refused it"),
        ("failed", "451 greylisted", True, "kept asking us to try later"),
        ("failed", "[Errno 111] Connection refused", True, "could not reach the mail server"),
    ],
)
def test_the_status_endpoint_says_the_state_in_plain_words(client, status, error, final, words):
    outcome = message(status=status, error=error)

    response = client.get(f"{URL}status/{outcome.reference}/")

    assert response.status_code == 200
    state = response.json()
    assert (state["reference"], state["status"], state["final"]) == (outcome.reference, status, final)
    assert words in state["text"]
    assert "mx.internal" not in state["text"] and "bob@" not in state["text"]
    assert "no-store" in response["Cache-Control"]


def test_the_page_shows_the_state_at_load_and_follows_it_with_a_script(client):
    outcome = message(status="failed", error="550 refused")

    content = client.get(f"{URL}thanks/{outcome.reference}/").content.decode()

    assert "could not be sent: the mail server refused it." in content
    assert 'data-final="true"' in content
    assert f'data-status-url="/contact/status/{outcome.reference}/"' in content
    assert '<script src="/static/relieve_app/outcome.js" defer></script>' in content
    script = finders.find("relieve_app/outcome.js")
    assert script, "the app ships its script as a static file"
    source = Path(script).read_text()
    assert "fetch(node.dataset.statusUrl" in source
    assert "http" not in source  # nothing from elsewhere: no CDN


def test_a_decoy_reference_reads_like_a_queued_message():
    decoy = references.decoy()

    assert references.is_decoy(decoy)
    assert len(decoy) == len(references.new())
    assert not references.is_decoy(references.new())
    assert not references.is_decoy(decoy[:-1] + ("A" if decoy[-1] != "A" else "B"))
