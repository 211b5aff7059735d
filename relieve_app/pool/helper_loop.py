"""The loop of a helper that answers frames (``relieve_app.pool.framing``'s): ``serve_one`` for the
one asker at the other end of its stdin and stdout, ``serve_shared`` for every asker of a shared
helper (``zygote_spawn.spawn(..., share=True)``), one request at a time.

A shared helper's descriptor 0 is the zygote's socket: each packet hands over one asker's pipes,
the read end of what it writes, then the write end of what it reads (``zygote.py``). Each asker is
sent ``hello`` first, then one answer per request. An asker leaves by closing its end; the helper
ends once none is left and the zygote has handed over no other, or the zygote is gone and its last
asker has left.

Requests are answered in turn: an asker whose request waits behind a long one waits as long. An
asker that gives up on one kills the process, for all of them; the others see end-of-file and ask
the zygote again (``relieve_app.contact.render`` does).
"""

import contextlib
import os
import select
import selectors
import socket

from .framing import FrameDecoder, FrameError, encode

READ_SIZE = 1 << 16
HANDED_OVER = 2  # descriptors a packet carries: the asker's requests, its answers
GONE = object()  # what _take_over gives once the zygote has closed its end


class _Asker:
    def __init__(self, requests, answers):
        self.requests = requests
        self.answers = answers
        self.decoder = FrameDecoder()

    def write(self, frame):
        """Send one frame; False once the asker is gone."""
        try:
            data = encode(frame)
        except FrameError as exc:  # the answer outgrew a frame
            data = encode({"error": str(exc)})
        try:
            while data:
                data = data[os.write(self.answers, data) :]
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def close(self):
        for fd in (self.requests, self.answers):
            with contextlib.suppress(OSError):
                os.close(fd)


def serve_one(answer, hello=None, requests=0, answers=1):
    """Answer the requests read from ``requests`` on ``answers`` with ``answer(request)`` until the
    asker closes its end or stops reading."""
    asker = _Asker(requests, answers)
    if hello is None or asker.write(hello):
        while _answer(asker, answer):
            pass


def serve_shared(answer, hello=None, zygote_fd=0):
    """Answer each asker's requests with ``answer(request)`` (a dict, or a FrameError for a frame
    that could not be read) until no asker is left; returns then."""
    zygote = socket.socket(fileno=zygote_fd)
    selector = selectors.DefaultSelector()
    selector.register(zygote, selectors.EVENT_READ)
    askers = {}
    served = False  # the zygote hands the first asker over just after the fork: none yet is no end
    try:
        while True:
            for key, _ in selector.select():
                if key.fileobj is zygote:
                    asker = _take_over(zygote)
                    if asker is GONE:
                        selector.unregister(zygote)  # the zygote is gone: serve who is left
                        zygote.close()
                        zygote = None
                    elif asker is None:
                        continue
                    elif hello is None or asker.write(hello):
                        askers[asker.requests] = asker
                        selector.register(asker.requests, selectors.EVENT_READ)
                        served = True
                    else:
                        asker.close()
                elif not _answer(askers[key.fd], answer):
                    selector.unregister(key.fd)
                    askers.pop(key.fd).close()
            if not askers and (zygote is None or (served and not _readable(zygote))):
                return
    finally:
        for asker in askers.values():
            asker.close()
        if zygote is not None:
            zygote.close()
        selector.close()


def _take_over(zygote):
    """The asker the zygote hands over; None for a packet that holds none, GONE once it is gone."""
    try:
        data, fds, _flags, _addr = socket.recv_fds(zygote, 256, HANDED_OVER)
    except (InterruptedError, BlockingIOError):
        return None
    except OSError:
        return GONE
    if data and len(fds) == HANDED_OVER:
        return _Asker(*fds)
    for fd in fds:  # not an asker's pipes: nothing to serve
        os.close(fd)
    return None if data else GONE


def _answer(asker, answer):
    """Read what the asker wrote and answer each whole request; False once it is gone."""
    try:
        data = os.read(asker.requests, READ_SIZE)
    except OSError:
        return False
    if not data:
        return False
    return all(asker.write(answer(request)) for request in asker.decoder.feed(data))


def _readable(sock):
    """Whether the zygote has handed over another asker (or closed) since the last look."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))
