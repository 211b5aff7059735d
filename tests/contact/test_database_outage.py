"""The contact view when the database cannot take a message: 503 with Retry-After, never a 500, and
nothing stored, so the visitor, told to send again, loses nothing and sends it once.

Real outages: on PostgreSQL the connection goes through a TCP proxy the test cuts; on SQLite the
database file is out of reach, or another connection holds the write lock past the busy timeout.
"""

import json
import sqlite3
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

from relieve_app.models import MailOutcome
from tests.tcp_proxy import TCPProxy

URL = "/contact/"
VALID = {"emitter": "ada@example.com", "subject": "Hello", "body": "A message long enough to be sent along."}
JSON_ACCEPT = {"HTTP_ACCEPT": "application/json"}

pytestmark = pytest.mark.django_db(transaction=True)  # the outage must reach the view's own transaction


@pytest.fixture
def database_settings(master_socket):
    """The connection's settings, restored after the test; the next query reconnects with the changes."""
    saved = {**connection.settings_dict, "OPTIONS": {**connection.settings_dict.get("OPTIONS", {})}}
    yield connection.settings_dict
    connection.close()
    connection.settings_dict.clear()
    connection.settings_dict.update(saved)


class Outage:
    """Cut and restore the database of this test run, the way its engine can really fail."""

    def __init__(self, settings_dict, tmp_path):
        self.settings_dict = settings_dict
        self.tmp_path = tmp_path
        self.proxy = None
        self.name = settings_dict["NAME"]
        if connection.vendor == "postgresql":
            target = (settings_dict.get("HOST") or "127.0.0.1", int(settings_dict.get("PORT") or 5432))
            self.proxy = TCPProxy(*target).start()
            settings_dict.update(HOST="127.0.0.1", PORT=str(self.proxy.port))
        connection.close()

    def cut(self):
        if self.proxy is not None:
            self.proxy.cut()
        else:  # the file's folder is gone: SQLite cannot open it
            self.settings_dict["NAME"] = str(self.tmp_path / "gone" / Path(self.name).name)
        connection.close()

    def restore(self):
        if self.proxy is not None:
            self.proxy.restore()
        else:
            self.settings_dict["NAME"] = self.name
        connection.close()


@pytest.fixture
def outage(database_settings, tmp_path):
    outage = Outage(database_settings, tmp_path)
    yield outage
    if outage.proxy is not None:
        outage.proxy.close()


def post(client, data=VALID, **extra):
    return client.post(URL, data, **extra)


def post_json(client, data=VALID):
    return client.post(URL, json.dumps(data), content_type="application/json", **JSON_ACCEPT)


def test_database_down_answers_503_with_retry_after_and_keeps_the_message_in_the_form(outage):
    client = Client()
    assert post(client).status_code == 303  # the way to the database works, through the proxy if any

    outage.cut()
    html = post(client, {**VALID, "body": "Kept for the visitor while the database is away."})
    as_json = post_json(client)
    outage.restore()

    assert html.status_code == 503
    assert int(html["Retry-After"]) > 0
    assert "send it again" in html.content.decode()
    assert "Kept for the visitor while the database is away." in html.content.decode()
    assert as_json.status_code == 503
    assert int(as_json["Retry-After"]) > 0
    assert "send it again" in as_json.json()["errors"]["__all__"][0]
    assert post(client).status_code == 303  # back: taken again
    assert MailOutcome.objects.count() == 2  # the refused ones were not stored


def test_a_locked_sqlite_database_answers_503_not_500(database_settings):
    if connection.vendor != "sqlite":
        pytest.skip("the write lock of a database file is SQLite's")
    database_settings["OPTIONS"]["timeout"] = 0.2  # the busy timeout, short so the test is fast
    connection.close()
    holder = sqlite3.connect(database_settings["NAME"], isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock, e.g. a frozen one
        locked = post_json(Client())
        locked_html = post(Client())
    finally:
        holder.rollback()
        holder.close()

    assert locked.status_code == 503
    assert int(locked["Retry-After"]) > 0
    assert locked_html.status_code == 503
    assert post_json(Client()).status_code == 202  # the lock released, the message is taken
    assert MailOutcome.objects.count() == 1


def test_database_down_the_state_of_a_message_is_a_503_not_a_500(outage):
    client = Client()
    thanks = post(client)["Location"]
    status_url = thanks.replace("/thanks/", "/status/")

    outage.cut()
    page = client.get(thanks)
    status = client.get(status_url)
    outage.restore()

    assert page.status_code == 503
    assert "cannot be read just now" in page.content.decode()
    assert status.status_code == 503
    assert int(status["Retry-After"]) > 0
    assert "cannot be read just now" in status.json()["errors"]["__all__"][0]
    assert client.get(status_url).json()["status"] == "queued"  # back
