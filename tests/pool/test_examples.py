"""Each example's main, run small: the answers are right and no child outlives it."""

import asyncio
import os
import socket
from pathlib import Path

import pytest

from examples import cloud, queue_batch, socket_server

WAIT = 15
CLIENTS = 10
N = 20_000


def sum_of_squares(n):
    return n * (n + 1) * (2 * n + 1) // 6


def children():
    """Pids of this process's children, zombies included, read from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it exited while we looked
        if int(fields[1]) == os.getpid():
            found.append(int(stat.parent.name))
    return found


@pytest.fixture(autouse=True)
def no_leaked_children():
    before = set(children())
    yield
    assert set(children()) <= before


async def ask(family, address):
    """Connect, send nothing, read the child's answer until it closes the socket."""
    loop = asyncio.get_running_loop()
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
        chunks = []
        while chunk := await loop.sock_recv(sock, 4096):
            chunks.append(chunk)
    n, total, pid = b"".join(chunks).decode().split()
    return int(n), int(total), int(pid)


async def serve_clients(family, **options):
    loop = asyncio.get_running_loop()
    listening = loop.create_future()
    server = asyncio.ensure_future(
        socket_server.main(tasks=2, n=N, connections=CLIENTS, on_listening=listening.set_result, **options)
    )
    try:
        address = await asyncio.wait_for(asyncio.shield(listening), WAIT)
        answers = await asyncio.wait_for(
            asyncio.gather(*(ask(family, address) for _ in range(CLIENTS))), WAIT
        )
        child_pids = await asyncio.wait_for(server, WAIT)
    finally:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
    return answers, child_pids


def check_answers(answers, child_pids):
    assert len(answers) == CLIENTS
    for n, total, pid in answers:
        assert (n, total) == (N, sum_of_squares(N))
        assert pid != os.getpid()
        assert pid in child_pids


def test_socket_server_answers_from_the_children_over_tcp():
    answers, child_pids = asyncio.run(serve_clients(socket.AF_INET, port=0))
    check_answers(answers, child_pids)


def test_socket_server_answers_over_a_unix_socket(tmp_path):
    path = str(tmp_path / "heavy.sock")
    answers, child_pids = asyncio.run(serve_clients(socket.AF_UNIX, unix=path))
    check_answers(answers, child_pids)
    assert not os.path.exists(path)


def test_queue_batch_exits_zero_for_every_chunk():
    lines = []
    codes = asyncio.run(asyncio.wait_for(queue_batch.main(chunks=5, size=2_000, out=lines.append), WAIT))
    assert codes == [0] * 5
    assert sum(line.startswith("chunk ") for line in lines) == 5


def test_cloud_sees_the_killed_child_restart():
    lines = []
    result = asyncio.run(asyncio.wait_for(cloud.main(tasks=2, calls=4, out=lines.append), WAIT))
    assert result["infos"] == 4
    assert result["errors"] == 1
    old_pid, new_pid = result["pids"]
    assert old_pid != new_pid
    assert "task0 restarting" in lines
