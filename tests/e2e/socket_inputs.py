"""Bad input for the master's Unix socket: one generator, shared by the e2e fuzz test and
``bench/fuzz_socket.py``.

``inputs(count, seed)`` yields ``Input``s: first a fixed catalogue (every case below at least once),
then seeded random draws from the same families, so a run of any size repeats exactly. ``throw``
plays one input on a fresh connection and reads what the master says until it closes;
``problems`` says how the answer differs from what the protocol promises. No Django needed here.

An input is a list of chunks written in order (``pause`` seconds apart), then the write side is
shut. ``expect`` is the reply kinds in order, ``"ok"`` or an error type; ``None`` when any
well-formed replies will do (random bytes may happen to make a frame).
"""

import json
import random
import socket
import time
from dataclasses import dataclass, field

from relieve_app.pool.framing import HEADER, MAX_FRAME, FrameDecoder, FrameError

PROTOCOL, UNKNOWN, BAD_ARGS = "ProtocolError", "UnknownOperation", "BadArguments"
UNKNOWN_OPS = [
    "__init__",
    "_reply",
    "../",
    "",
    " ping",
    "PING",
    "ping()",
    "ping\x00",
    "handle_ping",
    "__class__",
    "__dict__",
    "_error",
    "_serve_client",
    "_stopping",
    "enqueue",
    "stop",
    "run",
    "sweep",
    "pool",
    "options",
    "../../etc/passwd",
    "\ud800",
    "ping" * 1000,
    "é",
]
BAD_IDS = ["x", "1", -1, 0, True, False, None, 1.5, 2.0, 10**30, -(10**30), [], {}, [1], {"id": 1}]


# (payload, the reply it gets): JSON of the wrong shape, or not quite JSON
WRONG_SHAPES = [
    (b"[]", PROTOCOL),
    (b'[{"op":"ping"}]', PROTOCOL),
    (b'"ping"', PROTOCOL),
    (b"42", PROTOCOL),
    (b"null", PROTOCOL),
    (b"true", PROTOCOL),
    (b"1" * 5000, PROTOCOL),  # over Python's int digit limit
    (b"[" * 100_000, PROTOCOL),  # deeper than the JSON decoder's recursion
    (b'{"op":' + b"[" * 100_000, PROTOCOL),
    (b'{"op":' + b"[" * 8000 + b"]" * 8000 + b"}", UNKNOWN),  # deep, and still within the decoder
    (b'{"op":"submit","args":{"id":' + b"[" * 8000 + b"]" * 8000 + b"}}", BAD_ARGS),
    (b"", PROTOCOL),
    (b"{}", UNKNOWN),
    (b'{"args":{}}', UNKNOWN),
    (b'{"op":null}', UNKNOWN),
    (b'{"op":1}', UNKNOWN),
    (b'{"op":["ping"]}', UNKNOWN),
    (b'{"op":{"ping":1}}', UNKNOWN),
    (b'{"op":true}', UNKNOWN),
    (b'{"op":"ping","args":[]}', BAD_ARGS),
    (b'{"op":"ping","args":"x"}', BAD_ARGS),
    (b'{"op":"ping","args":null}', BAD_ARGS),
    (b'{"op":"ping","args":1}', BAD_ARGS),
    (b'{"op":"submit","args":{}}', BAD_ARGS),
    (b'{"op":"submit","args":{"id":NaN}}', BAD_ARGS),
    (b'{"op":"submit","args":{"id":Infinity}}', BAD_ARGS),
    (b'{"op":"submit","args":{"id":1e999}}', BAD_ARGS),
    (b'{"op":"submit","args":{"id":1,"id2":2}}', BAD_ARGS),
    (b'{"op":"submit","args":{"self":1}}', BAD_ARGS),
    (b'{"op":"submit","args":{"id":"\\ud800"}}', BAD_ARGS),
    (b'{"op":"ping","args":{"\\ud800":1}}', BAD_ARGS),
    (b'{"op":"ping","args":{"self":1}}', BAD_ARGS),
    (b'{"op":"ping","args":{"x":1}}', BAD_ARGS),
    (b'{"op":"status","args":{"verbose":true}}', BAD_ARGS),
    (b'{"op":"ping","op":"status"}', "ok"),  # duplicate keys: the last wins
    (b'{"op":"ping","args":{},"extra":[1,2,3]}', "ok"),
    (b'\xef\xbb\xbf{"op":"ping"}', "ok"),  # json.loads takes a UTF-8 BOM on bytes
    (b'{"op":"ping"}\x00', PROTOCOL),
    (b'{"op":"\xff"}', PROTOCOL),
]


@dataclass(frozen=True)
class Input:
    kind: str
    chunks: tuple
    expect: tuple | None
    pause: float = 0.0

    @property
    def size(self):
        return sum(len(chunk) for chunk in self.chunks)


@dataclass
class Result:
    replies: list = field(default_factory=list)  # decoded dicts, or FrameError for an unreadable reply
    closed_early: bool = False  # the master closed or reset while we were still writing
    hung: bool = False  # the master neither answered nor closed within the timeout

    @property
    def errors(self):
        return [reply for reply in self.replies if isinstance(reply, dict) and reply.get("ok") is False]


def frame(obj):
    """A frame that bypasses ``encode``'s checks (NaN, lone surrogates) the way a bad client would."""
    payload = json.dumps(obj, separators=(",", ":")).encode()
    return HEADER.pack(len(payload)) + payload


def raw(payload):
    return HEADER.pack(len(payload)) + payload


def request(op, **args):
    return frame({"op": op, "args": args})


def _one(kind, data, expect):
    return Input(kind, (data,), tuple(expect) if expect is not None else None)


# families: each takes a Random and returns one Input --------------------------------------------


def random_bytes(rng):
    return _one("random-bytes", rng.randbytes(rng.randint(1, 2048)), None)


def garbage_payload(rng):
    # A leading "}" or 0xff makes sure the payload never happens to be a JSON object.
    body = rng.choice([b"}", b"\xff"]) + rng.randbytes(rng.randint(0, 4096))
    return _one("garbage-payload", raw(body), [PROTOCOL])


def truncated(rng):
    whole = rng.choice([request("ping"), request("submit", id=rng.randint(1, 10**6)), raw(b"{}" * 50)])
    cut = rng.randint(1, len(whole) - 1)
    return _one("truncated", whole[:cut], [])


def oversized(rng):
    length = rng.choice([MAX_FRAME + 1, rng.randint(MAX_FRAME + 1, 2**32 - 1), 2**32 - 1])
    tail = rng.randbytes(rng.randint(0, 256))
    return _one("oversized-header", HEADER.pack(length) + tail, [PROTOCOL])


def oversized_then_ping(rng):
    """A whole frame one byte over the cap, then a ping: the decoder must skip it, not drop the ping."""
    return Input("oversized-then-ping", (raw(b" " * (MAX_FRAME + 1)) + request("ping"),), (PROTOCOL, "ok"))


def wrong_shape(rng):
    payload, expect = rng.choice(WRONG_SHAPES)
    return _one("wrong-shape", raw(payload), [expect])


def bad_submit(rng):
    bad_id = rng.choice([*BAD_IDS, rng.randint(-(10**6), 0), rng.randint(2**63, 2**200)])
    args = {"id": bad_id}
    if rng.random() < 0.2:
        args["priority"] = "high"  # an unknown argument
    return _one("bad-submit", frame({"op": "submit", "args": args}), [BAD_ARGS])


def unknown_op(rng):
    made_up = "".join(rng.choice("abc_./\\%$ \t") for _ in range(rng.randint(1, 30)))
    op = rng.choice([*UNKNOWN_OPS, made_up])
    return _one("unknown-op", request(op), [UNKNOWN])


def valid(rng):
    choice = rng.choice(["ping", "status", "submit"])
    if choice == "submit":  # an id no row has: queued, then found not pending and dropped
        return _one("valid", request("submit", id=rng.randint(10**9, 2**62)), ["ok"])
    return _one("valid", request(choice), ["ok"])


def many_frames(rng):
    pieces = [
        rng.choice([valid, unknown_op, bad_submit, garbage_payload])(rng) for _ in range(rng.randint(2, 60))
    ]
    data = b"".join(piece.chunks[0] for piece in pieces)
    expect = [kind for piece in pieces for kind in piece.expect]
    return _one("many-frames", data, expect)


def byte_by_byte(rng):
    whole, expect = rng.choice(
        [
            (request("ping"), "ok"),
            (request("status"), "ok"),
            (request("nope"), UNKNOWN),
            (request("submit", id="x"), BAD_ARGS),
        ]
    )
    return Input("byte-by-byte", tuple(whole[i : i + 1] for i in range(len(whole))), (expect,), pause=0.001)


FAMILIES = [
    random_bytes,
    garbage_payload,
    truncated,
    oversized,
    wrong_shape,
    bad_submit,
    unknown_op,
    valid,
    many_frames,
    byte_by_byte,
]


def catalogue():
    """Every fixed case once: the first inputs of any run."""
    for payload, expect in WRONG_SHAPES:
        yield _one("wrong-shape", raw(payload), [expect])
    for op in UNKNOWN_OPS:
        yield _one("unknown-op", request(op), [UNKNOWN])
    for bad_id in BAD_IDS:
        yield _one("bad-submit", frame({"op": "submit", "args": {"id": bad_id}}), [BAD_ARGS])
    yield _one("bad-submit", frame({"op": "submit", "args": {"id": 5, "priority": "high"}}), [BAD_ARGS])
    yield _one("oversized-header", HEADER.pack(2**32 - 1), [PROTOCOL])
    yield oversized_then_ping(None)
    yield _one("truncated", HEADER.pack(10)[:2], [])
    yield _one("truncated", HEADER.pack(100) + b'{"op":', [])
    yield _one("empty", b"", [])


def inputs(count, seed=0):
    """``count`` inputs: the catalogue first, then random draws (about one in 20 a 1 MiB skip)."""
    rng = random.Random(seed)
    made = 0
    for item in catalogue():
        if made == count:
            return
        made += 1
        yield item
    while made < count:
        family = oversized_then_ping if rng.random() < 0.05 else rng.choice(FAMILIES)
        made += 1
        yield family(rng)


# playing them -----------------------------------------------------------------------------------


def throw(path, item, timeout=5.0):
    """Play ``item`` on a new connection; read replies until the master closes or ``timeout``."""
    result = Result()
    decoder = FrameDecoder()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        try:
            for chunk in item.chunks:
                sock.sendall(chunk)
                if item.pause:
                    time.sleep(item.pause)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            result.closed_early = True
        deadline = time.monotonic() + timeout
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                data = sock.recv(65536)
            except TimeoutError:
                result.hung = True
                break
            except ConnectionResetError:
                result.closed_early = True
                break
            if not data:
                break
            result.replies.extend(decoder.feed(data))
    return result


def ping(path, timeout=2.0):
    """One good client's ping; True when the master answered ok within ``timeout``."""
    try:
        result = throw(path, Input("ping", (request("ping"),), ("ok",)), timeout)
    except OSError:
        return False
    return not result.hung and [kind(reply) for reply in result.replies] == ["ok"]


def kind(reply):
    """``"ok"``, the error type of an error reply, or a description of what is wrong with it."""
    if isinstance(reply, FrameError):
        return f"unreadable reply ({reply})"
    if reply.get("ok") is True and "result" in reply:
        return "ok"
    error = reply.get("error")
    if (
        reply.get("ok") is False
        and isinstance(error, dict)
        and isinstance(error.get("type"), str)
        and isinstance(error.get("message"), str)
        and error["message"]
    ):
        return error["type"]
    return f"malformed reply {reply!r:.200}"


def problems(item, result):
    """What the master did wrong with ``item``: an empty list when it kept the protocol."""
    found = []
    kinds = [kind(reply) for reply in result.replies]
    found += [k for k in kinds if k.startswith(("unreadable", "malformed"))]
    if result.hung:
        found.append(f"no close within the timeout after {kinds}")
    if item.expect is not None and kinds != list(item.expect):
        found.append(f"expected {list(item.expect)}, got {kinds}")
    return found


def peak_rss_kib(pid):
    """The process's peak resident set (VmHWM) in KiB, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def describe(item):
    head = b"".join(item.chunks)[:80]
    return f"{item.kind} ({item.size} bytes, {len(item.chunks)} chunks): {head!r}"
