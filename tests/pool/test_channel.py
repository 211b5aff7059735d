"""Channel: events over a socketpair in one process, and across a real child started by ForkTask.spawn."""

import asyncio
import socket
import threading

import pytest

from relieve_app.pool import Channel, ChannelClosed
from relieve_app.pool.framing import HEADER, encode

SOCKET_BYTES = b"through the passed socket"


def socketpair():
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def channel_pair(**options):
    left, right = socketpair()
    return Channel(left, **options), Channel(right, **options)


def raw_peer(**options):
    """A plain socket to write any bytes with, and the Channel on its other end."""
    writer, reader = socketpair()
    return writer, Channel(reader, **options)


def read_all(sock):
    sock.settimeout(10)
    chunks = []
    while chunk := sock.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_channel_needs_a_unix_stream_socket():
    async def scenario():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, pytest.raises(TypeError):
            Channel(tcp)
        datagram, other = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        with datagram, other, pytest.raises(TypeError):
            Channel(datagram)

    asyncio.run(scenario())


# in one process ---------------------------------------------------------------


def test_send_and_on(pool, run):
    async def scenario():
        left, right = channel_pair()
        hello = pool.next_event(right, "hello")
        sent = left.send("hello", 1, "two", [3.5, None], {"k": True})
        assert await pool.wait(sent) is None
        assert await pool.wait(hello) == (1, "two", [3.5, None], {"k": True})
        back = pool.next_event(left, "back")
        right.send("back")
        assert await pool.wait(back) == ()
        left.close()
        right.close()

    run(scenario())


def test_once_fires_once_and_off_removes_a_listener(pool, run):
    async def scenario():
        left, right = channel_pair()
        once, kept, removed = [], [], []
        right.once("ping", once.append)
        right.on("ping", kept.append)
        right.on("ping", removed.append)
        right.off("ping", removed.append)
        done = pool.next_event(right, "done")
        for i in range(3):
            left.send("ping", i)
        left.send("done")
        await pool.wait(done)
        assert once == [0]
        assert kept == [0, 1, 2]
        assert removed == []
        assert right.listeners("ping") == [kept.append]
        left.close()
        right.close()

    run(scenario())


def test_async_listeners_run_on_the_loop(pool, run):
    async def scenario():
        left, right = channel_pair()
        seen = asyncio.get_running_loop().create_future()

        async def listener(value):
            await asyncio.sleep(0)
            seen.set_result(value)

        right.on("later", listener)
        left.send("later", "v")
        assert await pool.wait(seen) == "v"
        left.close()
        right.close()

    run(scenario())


def test_a_raising_listener_is_logged_and_the_channel_goes_on(pool, run, caplog):
    async def scenario():
        left, right = channel_pair()

        def bad(*_):
            raise RuntimeError("listener failure")

        right.on("x", bad)
        after = pool.next_event(right, "after")
        left.send("x")
        left.send("after", 1)
        assert await pool.wait(after) == (1,)
        left.close()
        right.close()

    run(scenario())
    assert "listener for 'x' raised" in caplog.text


def test_frames_larger_than_the_socket_buffer_arrive_whole_and_in_order(pool, run):
    async def scenario():
        left, right = channel_pair()
        got = []
        right.on("n", lambda i, blob: got.append((i, len(blob))))
        done = pool.next_event(right, "done")
        blob = "b" * 400_000
        sends = [left.send("n", i, blob) for i in range(5)]
        left.send("done")
        await pool.wait(asyncio.gather(*sends))
        await pool.wait(done)
        assert got == [(i, len(blob)) for i in range(5)]
        left.close()
        right.close()

    run(scenario())


def test_send_from_plain_threads(pool, run):
    async def scenario():
        left, right = channel_pair()
        got = []
        right.on("t", lambda thread, i, _padding: got.append((thread, i)))
        results = []

        def sender(thread):
            for i in range(50):
                # from a thread the awaitable is a concurrent future: it can be waited on here
                results.append(left.send("t", thread, i, "p" * 2000).result(10))

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        await pool.wait(asyncio.to_thread(lambda: [t.join() for t in threads]))
        done = pool.next_event(right, "done")
        left.send("done")
        await pool.wait(done)
        assert results == [None] * 200
        for n in range(4):
            assert [i for thread, i in got if thread == n] == list(range(50))
        left.close()
        right.close()

    run(scenario())


def test_sockets_passed_as_args_arrive_as_sockets_and_the_senders_copy_is_closed(pool, run):
    async def scenario():
        left, right = channel_pair()
        mine, theirs = socketpair()
        other_mine, other_theirs = socketpair()
        got = pool.next_event(right, "sockets")
        await pool.wait(left.send("sockets", "label", theirs, 7, other_theirs))
        assert theirs.fileno() == -1 and other_theirs.fileno() == -1  # closed once sent
        label, first, seven, second = await pool.wait(got)
        assert (label, seven) == ("label", 7)
        assert isinstance(first, socket.socket) and isinstance(second, socket.socket)
        assert first.family == socket.AF_UNIX and first.type == socket.SOCK_STREAM
        first.sendall(b"first")
        first.close()
        second.sendall(b"second")
        second.close()
        assert await asyncio.to_thread(read_all, mine) == b"first"
        assert await asyncio.to_thread(read_all, other_mine) == b"second"
        mine.close()
        other_mine.close()
        left.close()
        right.close()

    run(scenario())


def test_sockets_in_consecutive_frames_go_to_their_own_frame(pool, run):
    async def scenario():
        left, right = channel_pair()
        ends = [socketpair() for _ in range(6)]
        got = []
        right.on("s", lambda i, sock: got.append((i, sock)))
        done = pool.next_event(right, "done")
        for i, (_, theirs) in enumerate(ends):
            left.send("s", i, theirs)
        left.send("done")
        await pool.wait(done)
        assert [i for i, _ in got] == list(range(6))
        for (i, sock), (mine, _) in zip(got, ends, strict=True):
            sock.sendall(b"frame %d" % i)
            sock.close()
            assert await asyncio.to_thread(read_all, mine) == b"frame %d" % i
            mine.close()
        left.close()
        right.close()

    run(scenario())


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (HEADER.pack(9) + b"{not json", "not UTF-8 JSON"),
        (HEADER.pack(2) + b"[]", "expected an object"),
        (encode({"a": [1]}), "frame is not an event"),
        (encode({"e": 3, "a": []}), "frame is not an event"),
        (encode({"e": "x", "a": "not a list"}), "frame is not an event"),
        (encode({"e": "x", "a": [None], "s": [0]}), "names sockets it did not carry"),
        (encode({"e": "x", "a": [None], "s": [5]}), "names sockets it did not carry"),
        (HEADER.pack(5000) + b"o" * 5000, "exceeds the 1000-byte cap"),
    ],
    ids=["not-json", "not-object", "no-event", "event-not-str", "args-not-list", "no-fd", "bad-index", "big"],
)
def test_a_bad_frame_is_a_protocol_error_and_later_frames_still_arrive(pool, run, bad, message):
    async def scenario():
        writer, channel = raw_peer(max_frame=1000)
        errors = []
        channel.on("protocol_error", errors.append)
        channel.on("x", lambda *args: errors.append(("x delivered", args)))
        after = pool.next_event(channel, "after")
        writer.sendall(bad + encode({"e": "after", "a": [1]}))
        assert await pool.wait(after) == (1,)
        assert len(errors) == 1 and message in errors[0]
        assert not channel.closed
        # the channel still answers in both directions
        await pool.wait(channel.send("reply", "ok"))
        assert await pool.wait(asyncio.to_thread(writer.recv, 100)) == encode({"e": "reply", "a": ["ok"]})
        writer.close()
        channel.close()

    run(scenario())


def test_peer_close_emits_close_and_sending_after_raises(pool, run):
    async def scenario():
        left, right = channel_pair()
        closed = pool.next_event(right, "close")
        left.close()
        left.close()  # twice is fine
        assert left.closed
        await pool.wait(closed)
        assert right.closed
        with pytest.raises(ChannelClosed):
            await right.send("late")
        with pytest.raises(ChannelClosed):
            await left.send("late")

    run(scenario())


def test_frames_sent_just_before_close_are_delivered_before_close(pool, run):
    async def scenario():
        left, right = channel_pair()
        order = []
        right.on("last", lambda i: order.append(i))
        closed = pool.next_event(right, "close")
        right.on("close", lambda: order.append("close"))
        for i in range(3):
            left.send("last", i)
        left.close()
        await pool.wait(closed)
        assert order == [0, 1, 2, "close"]

    run(scenario())


def test_from_parent_needs_the_descriptor_variable(monkeypatch):
    from relieve_app.pool import RelieveError
    from relieve_app.pool.channel import CHANNEL_FD_ENV

    monkeypatch.delenv(CHANNEL_FD_ENV, raising=False)
    with pytest.raises(RelieveError, match=CHANNEL_FD_ENV):
        Channel.from_parent()


# across a real child ------------------------------------------------------------


def test_events_both_ways_with_a_child(pool, run):
    async def scenario():
        child = await pool.fork()
        ready = pool.next_event(child, "ready")
        (pid,) = await pool.wait(ready)
        assert pid == child.pid
        echo = pool.next_event(child, "echo")
        await pool.wait(child.send("echo", 1, "two", {"three": [3]}))
        assert await pool.wait(echo) == (1, "two", {"three": [3]})

    run(scenario())


def test_send_to_a_child_from_a_plain_thread(pool, run):
    async def scenario():
        child = await pool.fork()
        await pool.wait(pool.next_event(child, "ready"))
        echo = pool.next_event(child, "echo")

        def from_thread():
            return child.send("echo", "from a thread").result(10)

        assert await pool.wait(asyncio.to_thread(from_thread)) is None
        assert await pool.wait(echo) == ("from a thread",)

    run(scenario())


def test_a_socket_passed_to_a_child_works_there(pool, run):
    async def scenario():
        child = await pool.fork()
        await pool.wait(pool.next_event(child, "ready"))
        mine, theirs = socketpair()
        await pool.wait(child.send("write", theirs, "written by the child"))
        assert theirs.fileno() == -1
        assert await pool.wait(asyncio.to_thread(read_all, mine)) == b"written by the child"
        mine.close()

    run(scenario())


def test_a_socket_passed_by_a_child_works_here(pool, run):
    async def scenario():
        child = await pool.fork()
        await pool.wait(pool.next_event(child, "ready"))
        got = pool.next_event(child, "socket")
        await child.send("socket_please", "written by the child into its own socketpair")
        (sock,) = await pool.wait(got)
        assert isinstance(sock, socket.socket)
        with sock:
            data = await pool.wait(asyncio.to_thread(read_all, sock))
        assert data == b"written by the child into its own socketpair"

    run(scenario())


def test_a_child_exit_closes_the_channel(pool, run):
    async def scenario():
        child = await pool.fork()
        await pool.wait(pool.next_event(child, "ready"))
        closed = pool.next_event(child, "close")
        exited = pool.next_event(child, "exit")
        await child.send("quit", 0)
        await pool.wait(closed)
        assert await pool.wait(exited) == (0,)
        with pytest.raises(ChannelClosed):
            await child.send("echo", "too late")

    run(scenario())
