"""The web side's fixtures, shared by the app's test folders: a socket path, and a FakeMaster on it."""

import pytest

from relieve_app.contact.mailtask import kept_mail
from tests.fake_master import FakeMaster, acknowledge


@pytest.fixture(autouse=True)
def no_rate_limit(settings):
    """Tests here post many messages from one address: the limit is off unless a test sets it (test_spam)."""
    settings.CONTACT_RATE_LIMIT = ""


@pytest.fixture
def master_socket(tmp_path, settings):
    """A socket path the client uses, short enough for AF_UNIX, with a small acknowledgement timeout."""
    path = tmp_path / "m.sock"
    settings.RELIEVE_SOCKET = str(path)
    settings.RELIEVE_ACK_TIMEOUT = 0.2
    return path


@pytest.fixture
def fake_master(master_socket):
    """Call with an answer function to start a FakeMaster on `master_socket`; stopped after the test."""
    masters = []

    def start(answer=acknowledge):
        master = FakeMaster(master_socket, answer).start()
        masters.append(master)
        return master

    yield start
    for master in masters:
        master.stop()


@pytest.fixture
def mail(mail_settings):
    """The Mail the contact mail task keeps, as each child keeps one: made afresh on the test's mail
    settings, so `send_contact_mail.call(job)` sends through it; closed after the test."""
    kept_mail.cache_clear()
    kept = kept_mail()
    yield kept
    kept.close()
    kept_mail.cache_clear()
