"""A TCP proxy that can be cut: a database outage for one master, without stopping the server."""

import contextlib
import selectors
import socket
import threading


class TCPProxy:
    """Forwards 127.0.0.1:<port> to ``target``. ``cut()`` drops every connection and refuses new
    ones (accepted, then closed at once) until ``restore()``."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs = set()
        self._cut = False
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)

    def start(self):
        self._thread.start()
        return self

    __enter__ = start

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self._closed = True
        self._listener.close()
        self._drop()

    def cut(self):
        with self._lock:
            self._cut = True
        self._drop()

    def restore(self):
        with self._lock:
            self._cut = False

    def _drop(self):
        with self._lock:
            pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                cut = self._cut
            if cut:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            pair = (client, upstream)
            with self._lock:
                self._pairs.add(pair)
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair):
        client, upstream = pair
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            while True:
                try:
                    events = selector.select(timeout=0.5)
                    for key, _ in events:
                        data = key.fileobj.recv(65536)
                        if not data:
                            raise OSError("closed")
                        key.data.sendall(data)
                except (OSError, ValueError):
                    break
                with self._lock:
                    if pair not in self._pairs:
                        break
        with self._lock:
            self._pairs.discard(pair)
        for sock in pair:
            sock.close()
