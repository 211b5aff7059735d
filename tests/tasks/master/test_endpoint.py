"""Endpoint.check(): what is wrong with the socket path is said before any child starts, with the fix;
requests that want no reply; and bursts of clients, served a few connections at a time."""

import asyncio
import logging
import os
import resource
import socket
import time

import pytest

from relieve_app.pool.framing import FrameDecoder, encode
from relieve_app.tasks import client
from relieve_app.tasks.master import connections
from relieve_app.tasks.master.endpoint import MAX_SOCKET_PATH, Endpoint
from relieve_app.tasks.master.errors import StartupError


def check(path):
    Endpoint(path, operations=None).check()


def test_a_missing_folder_that_can_be_created_passes(tmp_path):
    check(tmp_path / "new" / "deeper" / "r.sock")


def test_a_file_as_the_socket_folder_says_so(tmp_path):
    (tmp_path / "afile").write_text("")

    with pytest.raises(
        StartupError, match=r"afile is a file, not a folder; fix that or choose another --socket"
    ):
        check(tmp_path / "afile" / "r.sock")


def test_a_file_further_up_says_which_one(tmp_path):
    (tmp_path / "afile").write_text("")

    with pytest.raises(
        StartupError, match=rf"cannot put the socket in {tmp_path}/afile/sub: {tmp_path}/afile is a file"
    ):
        check(tmp_path / "afile" / "sub" / "r.sock")


def test_a_broken_link_as_the_folder_says_so(tmp_path):
    os.symlink(tmp_path / "nowhere", tmp_path / "link")

    with pytest.raises(StartupError, match="is a broken link, not a folder"):
        check(tmp_path / "link" / "r.sock")


def test_a_folder_as_the_socket_path_says_to_name_the_file(tmp_path):
    with pytest.raises(StartupError, match=rf"{tmp_path} is a folder; .* e\.g\. {tmp_path}/relieve\.sock"):
        check(tmp_path)


def test_a_path_too_long_for_af_unix_says_so(tmp_path):
    with pytest.raises(StartupError, match=f"longer than {MAX_SOCKET_PATH} bytes"):
        check(tmp_path / ("x" * 120) / "r.sock")


def test_a_path_bound_after_the_claim_is_left_to_its_owner_and_said(tmp_path):
    path = tmp_path / "r.sock"
    endpoint = Endpoint(path, operations=None)
    endpoint.claim()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(str(path))
        other.listen()
        with pytest.raises(StartupError, match="was taken while this master started"):
            asyncio.run(endpoint.listen())
        assert path.exists()  # the other one's socket is still there


class Taker:
    """Operations that note each submitted id."""

    def __init__(self):
        self.taken = []

    def handle_submit(self, id):
        self.taken.append(id)
        return {"queued": id}


def test_a_burst_announced_without_waiting_is_taken_whole_though_its_client_is_gone(tmp_path, settings):
    path = tmp_path / "r.sock"
    settings.RELIEVE_SOCKET = str(path)
    operations = Taker()
    ids = list(range(1, 20_001))  # far more than one read of the socket

    async def main():
        endpoint = Endpoint(path, operations)
        await endpoint.listen()
        try:
            assert await asyncio.to_thread(client.announce, [(task_id, {}) for task_id in ids])
            for _ in range(500):
                if len(operations.taken) == len(ids):
                    break
                await asyncio.sleep(0.01)
        finally:
            endpoint.close()

    asyncio.run(main())
    assert operations.taken == ids


def open_descriptors():
    return len(os.listdir("/proc/self/fd"))


def test_clients_queued_while_the_master_was_busy_are_served_a_few_connections_at_a_time(tmp_path, settings):
    path = tmp_path / "r.sock"
    settings.RELIEVE_SOCKET = str(path)
    operations = Taker()
    ids = list(range(1, 2001))  # each announced on a connection of its own, as web requests do
    most_open = 0

    async def main():
        nonlocal most_open
        endpoint = Endpoint(path, operations)
        await endpoint.listen()
        before = open_descriptors()
        try:
            for task_id in ids:  # the loop is held here: every client waits in the socket's queue
                assert client.announce([(task_id, {})])
            deadline = time.monotonic() + 30
            while len(operations.taken) < len(ids) and time.monotonic() < deadline:
                await asyncio.sleep(0)
                most_open = max(most_open, open_descriptors() - before)
        finally:
            endpoint.close()

    asyncio.run(main())
    assert operations.taken == ids  # every one, in the order they connected
    assert most_open <= connections.max_open()


def test_a_master_out_of_descriptors_waits_then_serves_every_client(tmp_path, settings, caplog):
    path = tmp_path / "r.sock"
    settings.RELIEVE_SOCKET = str(path)
    operations = Taker()
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)
    clients = []

    async def main():
        endpoint = Endpoint(path, operations)
        await endpoint.listen()
        try:
            # 15 clients connect and send, and stay connected; 5 descriptors are left to accept with
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_descriptors() + 20, limit[1]))
            for task_id in range(1, 16):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(path))
                sock.sendall(encode({"op": "submit", "args": {"id": task_id}, "reply": False}))
                clients.append(sock)
            await asyncio.sleep(0.5)
            assert 0 < len(operations.taken) < 15  # as many as it had descriptors for
            for sock in clients:
                sock.close()  # each end of input frees the master's side of it
            deadline = time.monotonic() + 10
            while len(operations.taken) < 15 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, limit)
            endpoint.close()

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    assert sorted(operations.taken) == list(range(1, 16))
    warnings = [r for r in caplog.records if "limit of open files" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING, caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_a_fault_serving_one_client_closes_its_connection_and_the_next_is_served(tmp_path, caplog):
    path = str(tmp_path / "r.sock")
    taken = []

    def answer(frame):
        if frame["args"]["id"] == 1:
            raise RuntimeError("a fault")
        taken.append(frame["args"]["id"])
        return encode({"ok": True, "result": None})

    async def main():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(path)
            server.listen()
            server.setblocking(False)
            acceptor = connections.Acceptor(asyncio.get_running_loop(), server, answer, timeout=5)
            acceptor.start()
            try:
                answers = []
                for task_id in (1, 2):
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                        sock.settimeout(5)
                        sock.connect(path)
                        sock.sendall(encode({"op": "submit", "args": {"id": task_id}}))
                        sock.shutdown(socket.SHUT_WR)
                        answers.append(await asyncio.to_thread(sock.recv, 4096))
                return answers, len(acceptor.open)
            finally:
                acceptor.close()

    answers, still_open = asyncio.run(main())
    assert answers[0] == b""  # closed without an answer
    assert answers[1].endswith(b'{"ok":true,"result":null}') and taken == [2]
    assert still_open == 0
    assert "its connection is closed" in caplog.text


def test_a_reply_too_large_for_a_frame_is_answered_as_an_error():
    class Huge:
        def handle_dump(self):
            return "x" * (2 << 20)

    [reply] = FrameDecoder().feed(Endpoint("unused.sock", Huge()).answer({"op": "dump", "args": {}}))
    assert reply["ok"] is False and reply["error"]["type"] == "ReplyTooLarge", reply
