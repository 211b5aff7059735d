import logging
import time

import pytest

from relieve_app.pool.framing import HEADER, encode
from relieve_app.tasks import client
from tests.fake_master import acknowledge, hang_up, refuse, stay_silent

GENEROUS = 3.0  # seconds: an upper bound that holds on a busy shared machine


def test_submit_acknowledged(fake_master):
    master = fake_master(acknowledge)

    assert client.submit(42) is True
    assert master.requests == [{"op": "submit", "args": {"id": 42}}]


def test_request_returns_the_result(fake_master):
    fake_master(acknowledge)

    assert client.request("submit", id=7) == {"queued": 7}


def test_refusal_keeps_type_and_message(fake_master):
    fake_master(refuse)

    with pytest.raises(client.MasterError) as caught:
        client.request("frobnicate")
    assert caught.value.type == "UnknownOperation"
    assert caught.value.message == "no such operation"
    assert isinstance(caught.value, client.ClientError)


def test_refused_submit_returns_false(fake_master, caplog):
    fake_master(refuse)

    with caplog.at_level(logging.WARNING, logger="relieve_app.tasks.client"):
        assert client.submit(3) is False
    assert "UnknownOperation" in caplog.text


def test_silent_master_times_out(fake_master, master_socket, caplog):
    master = fake_master(stay_silent)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="relieve_app.tasks.client"):
        assert client.submit(5) is False
    assert time.monotonic() - started < GENEROUS
    assert master.requests == [{"op": "submit", "args": {"id": 5}}]
    assert str(master_socket) in caplog.text
    assert "stays queued" in caplog.text


def test_silent_master_raises_unavailable(fake_master):
    fake_master(stay_silent)

    with pytest.raises(client.MasterUnavailable, match="within"):
        client.request("ping")


def test_hang_up_is_unavailable(fake_master):
    fake_master(hang_up)

    with pytest.raises(client.MasterUnavailable):
        client.request("ping")


@pytest.mark.parametrize(
    "garbage",
    [
        HEADER.pack(5) + b"hello",  # not JSON
        HEADER.pack(2) + b"[]",  # JSON, not an object
        HEADER.pack(0xFFFFFFFF) + b"x" * 10,  # over the size cap
        b"\x00\x00",  # half a header, then EOF
        encode({"status": "fine"}),  # an object, but not a reply
    ],
    ids=["not-json", "not-object", "oversized", "truncated", "no-ok"],
)
def test_garbage_is_unavailable(fake_master, garbage):
    def answer(master, conn):
        master.receive(conn)
        conn.sendall(garbage)

    fake_master(answer)

    with pytest.raises(client.MasterUnavailable):
        client.request("ping")


def test_missing_socket_is_unavailable(master_socket):
    with pytest.raises(client.MasterUnavailable, match=str(master_socket)):
        client.request("ping")


def test_refused_connection_is_unavailable(master_socket):
    master_socket.touch()  # a file that is not a listening socket

    with pytest.raises(client.MasterUnavailable):
        client.request("ping")


def test_submit_never_raises_without_master(master_socket, caplog):
    with caplog.at_level(logging.WARNING, logger="relieve_app.tasks.client"):
        assert client.submit(9) is False
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert str(master_socket) in record.getMessage()
