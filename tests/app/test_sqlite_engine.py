"""relieve_app.sqlite3: a request polls for the write lock; a master and its children keep SQLite's backoff.

Each test opens its own database file through the engine, so they run whatever database the suite uses.
"""

import sqlite3
import threading
from types import SimpleNamespace

import pytest
from django.db import OperationalError
from django.db.utils import ConnectionHandler

from relieve_app.sqlite3 import base

HOLD_FOR_TRIES = 3  # BEGINs the waiting connection makes before the holder lets the lock go


@pytest.fixture
def engine(tmp_path, django_db_blocker):
    """A connection through the engine to a database file of its own; `open(timeout)` connects it.

    Not the test database: pytest-django's blocker is lifted for this file alone."""
    made = []

    def open_(timeout):
        options = {"transaction_mode": "IMMEDIATE", "timeout": timeout}
        name = str(tmp_path / "lock.sqlite3")
        settings = {"ENGINE": "relieve_app.sqlite3", "NAME": name, "OPTIONS": options}
        handler = ConnectionHandler({"default": settings})
        connection = handler["default"]
        connection.ensure_connection()
        connection.connection.execute("PRAGMA journal_mode=WAL")
        statements = []
        connection.connection.set_trace_callback(statements.append)
        made.append(connection)
        return connection, statements

    with django_db_blocker.unblock():
        yield open_
        for connection in made:
            connection.close()


def holder_of(connection):
    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another process in its write, a master's say
    return holder


def begin(connection):
    """What transaction.atomic() does first on SQLite."""
    connection.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)


def end(connection):
    connection.rollback()
    connection.set_autocommit(True)


def release_after_tries(holder, statements, tries):
    """Let the lock go once the waiting connection has asked for it `tries` times."""

    def watch():
        waited = threading.Event()
        for _ in range(5000):  # five seconds at most: the assertions say what did not happen
            if statements.count("BEGIN IMMEDIATE") >= tries:
                break
            waited.wait(0.001)
        holder.rollback()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_request_asks_again_until_the_lock_is_free_then_restores_its_busy_timeout(engine):
    connection, statements = engine(timeout=20)
    holder = holder_of(connection)
    watcher = release_after_tries(holder, statements, HOLD_FOR_TRIES)
    try:
        begin(connection)
        assert connection.in_atomic_block is False  # set_autocommit alone: a transaction, not an atomic block
        assert connection.connection.in_transaction
    finally:
        watcher.join(5)
        end(connection)
        holder.close()

    assert statements.count("BEGIN IMMEDIATE") >= HOLD_FOR_TRIES
    assert statements[0] == "PRAGMA busy_timeout = 0"
    # restored before the transaction's first statement: autocommit writes wait SQLite's way
    assert statements[-2:] == ["PRAGMA busy_timeout = 20000", "ROLLBACK"]
    assert connection.connection.execute("PRAGMA busy_timeout").fetchone()[0] == 20_000


def test_a_request_gives_up_at_its_timeout_with_djangos_error(engine):
    connection, statements = engine(timeout=0.2)
    holder = holder_of(connection)
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            begin(connection)  # the contact view answers 503 to this (tests/contact/test_database_outage.py)
    finally:
        holder.rollback()
        holder.close()

    assert statements.count("BEGIN IMMEDIATE") > 1
    assert connection.connection.execute("PRAGMA busy_timeout").fetchone()[0] == 200
    connection.set_autocommit(True)
    begin(connection)  # the lock is free: the same connection takes it
    assert connection.connection.in_transaction
    end(connection)


def test_a_master_and_its_children_keep_sqlites_own_backoff(engine, monkeypatch):
    monkeypatch.setattr(base, "_yields", False)
    base.yield_to_requests()
    assert base._yields is True
    connection, statements = engine(timeout=20)
    holder = holder_of(connection)
    watcher = release_after_tries(holder, statements, 1)
    try:
        begin(connection)  # SQLite's busy handler waits, inside this one statement
        assert connection.connection.in_transaction
    finally:
        watcher.join(5)
        end(connection)
        holder.close()

    assert statements.count("BEGIN IMMEDIATE") == 1
    assert "PRAGMA busy_timeout = 0" not in statements


def test_a_transaction_mode_other_than_immediate_is_djangos(engine, monkeypatch):
    monkeypatch.setattr(base, "_yields", False)
    connection, statements = engine(timeout=20)
    connection.transaction_mode = None
    begin(connection)
    end(connection)

    assert statements[:1] == ["BEGIN"]
    assert "PRAGMA busy_timeout = 0" not in statements


def test_a_master_yields_before_it_forks_its_zygote(monkeypatch):
    from relieve_app.tasks.master import server

    monkeypatch.setattr(base, "_yields", False)
    seen = []
    zygote = SimpleNamespace(attached=True)

    class Master:
        def __init__(self, options, preforked):
            seen.append(("forked", preforked, base._yields))

        async def run(self):
            seen.append(("ran", base._yields))

    def fork_zygote(preload, immortal):
        seen.append(("zygote", base._yields, immortal))
        return zygote

    monkeypatch.setattr(server, "fork_zygote", fork_zygote)
    monkeypatch.setattr(server, "preloads", lambda script: [])
    monkeypatch.setattr(server, "Master", Master)
    server.run(SimpleNamespace(preload=True, immortal=False, script=None))

    assert seen == [("zygote", True, False), ("forked", zygote, True), ("ran", True)]
