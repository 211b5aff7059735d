"""Bad input on the master's socket: errors answered where a frame can be read, idle and slow clients
cut off after the client timeout, a crowd all served, and through all of it a good client's ping
answered and the master alive. The inputs live in socket_inputs.py (bench/fuzz_socket.py plays
them too); RELIEVE_FUZZ_INPUTS sets how many, RELIEVE_FUZZ_SEED which."""

import os
import selectors
import socket
import threading
import time

import pytest

from relieve_app.contact.mailtask import send_contact_mail
from relieve_app.models import MailOutcome, TaskRecord
from relieve_app.tasks import client
from tests.e2e import socket_inputs
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.e2e

FUZZ_INPUTS = int(os.environ.get("RELIEVE_FUZZ_INPUTS", "300"))
FUZZ_SEED = int(os.environ.get("RELIEVE_FUZZ_SEED", "0"))
CLIENT_TIMEOUT = 1.5
PING_WITHIN = 2.0
RSS_GROWTH_KIB = 64 * 1024  # an oversized length is skipped, never allocated: far below 4 GiB


@pytest.fixture
def running(master):
    master.env["RELIEVE_CLIENT_TIMEOUT"] = str(CLIENT_TIMEOUT)
    master.start(workers=2)
    return master


def timed_ping():
    started = time.monotonic()
    reply = client.request("ping")
    return reply, time.monotonic() - started


def assert_healthy(master):
    assert master.process.poll() is None, f"the master died:\n{master.output()}"
    assert "Traceback" not in master.output(), master.output()


def test_bad_input_is_answered_and_the_master_keeps_serving(running, smtp_sink):
    pid = running.process.pid
    rss_before = socket_inputs.peak_rss_kib(pid)
    failures = []
    for number, item in enumerate(socket_inputs.inputs(FUZZ_INPUTS, FUZZ_SEED), 1):
        result = socket_inputs.throw(running.socket_path, item)
        failures += [
            f"#{number} {socket_inputs.describe(item)}: {p}" for p in socket_inputs.problems(item, result)
        ]
        reply, took = timed_ping()
        assert reply["pid"] == pid and took < PING_WITHIN, f"ping after #{number} took {took:.2f}s"
        assert running.process.poll() is None, f"died on #{number} {socket_inputs.describe(item)}"
    assert not failures, "\n".join(failures[:20])

    assert_healthy(running)
    assert socket_inputs.peak_rss_kib(pid) - rss_before < RSS_GROWTH_KIB
    job = {
        "emitter": "fuzz@example.org",
        "recipient": "owner@example.com",
        "subject": "after the fuzz",
        "body": "still *here*",
    }
    task = TaskRecord.objects.create(
        task_path=send_contact_mail.module_path, queue_name="mail", backend="default", args=[job]
    )
    row = MailOutcome.objects.create(**job, task_result=task)
    assert client.request("submit", id=task.pk, queue="mail") == {"queued": task.pk}
    smtp_sink.wait_for(1, timeout=20)
    assert [message["Subject"] for message in smtp_sink.messages] == ["after the fuzz"]
    wait_until(lambda: MailOutcome.objects.get(pk=row.pk).status == "sent", timeout=10, message="row sent")


def test_idle_and_slow_clients_do_not_hold_up_others_and_are_cut_off(running):
    opened = time.monotonic()
    idle = []
    for n in range(50):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(running.socket_path)
        if n % 3 == 1:
            sock.sendall(b"\x00")  # one byte of a header
        elif n % 3 == 2:
            sock.sendall(socket_inputs.request("ping")[:-1])  # all of a frame but its last byte
        idle.append(sock)
    flood = NeverReads(running.socket_path)
    flood.start()

    for _ in range(5):
        reply, took = timed_ping()
        assert reply["pid"] == running.process.pid and took < 1.0, f"ping took {took:.2f}s"

    closed_after = wait_for_eof(idle, timeout=CLIENT_TIMEOUT + 5)
    assert len(closed_after) == len(idle), f"{len(idle) - len(closed_after)} idle connections still open"
    assert min(closed_after) - opened >= CLIENT_TIMEOUT * 0.8  # cut off by the timeout, not at once
    flood.join(CLIENT_TIMEOUT + 5)
    assert not flood.is_alive(), "a client that never reads its replies was never cut off"
    assert isinstance(flood.error, (BrokenPipeError, ConnectionResetError)), flood.error
    assert timed_ping()[0]["pid"] == running.process.pid
    assert_healthy(running)


def test_a_crowd_of_clients_at_once_is_all_answered(running):
    crowd = 500  # well over asyncio's default listen backlog of 100
    start = threading.Barrier(crowd)
    replies, errors = [], []

    def one():
        start.wait()
        try:
            replies.append(client.request("ping"))
        except client.ClientError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(crowd)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, f"{len(errors)} of {crowd} failed, first: {errors[0]}"
    assert len(replies) == crowd and {reply["pid"] for reply in replies} == {running.process.pid}
    assert_healthy(running)


class NeverReads(threading.Thread):
    """Sends ping after ping and never reads a reply, until the master hangs up on it."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.error = None

    def run(self):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(self.path)
            sock.settimeout(30)
            try:
                sock.sendall(socket_inputs.request("ping") * 200_000)  # 5 MB asking for 9 MB of replies
            except OSError as exc:
                self.error = exc


def wait_for_eof(socks, timeout):
    """Seconds (monotonic) at which each socket was closed by the other end, for those that were."""
    closed = []
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while len(closed) < len(socks) and time.monotonic() < deadline:
            for key, _ in selector.select(deadline - time.monotonic()):
                try:
                    data = key.fileobj.recv(4096)
                except ConnectionResetError:
                    data = b""
                if not data:
                    closed.append(time.monotonic())
                    selector.unregister(key.fileobj)
                    key.fileobj.close()
    for sock in socks:
        sock.close()
    return closed
