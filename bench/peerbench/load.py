"""Clients posting the contact form over HTTP, as browsers would: CSRF cookie, keep-alive, JSON answers.

Each message has its own subject, so the sink's receipts can be matched to the POST that sent it.
"""

import http.client
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlencode

BODY = "Message {n}: some **Markdown**, a list\n\n- one\n- two\n\nand [a link](https://example.com)."


@dataclass
class Post:
    subject: str
    started: float  # monotonic, as the sink's arrivals
    seconds: float
    status: object  # the HTTP status, or the name of the exception


def post_all(port, path, subjects, clients, rate=None):
    """POST one message per subject from `clients` threads, as fast as answered or `rate` per second."""
    posts = []
    lock = threading.Lock()
    pending = iter(enumerate(subjects))
    t0 = time.monotonic()

    def take():
        with lock:
            return next(pending, None)

    def client():
        conn, headers = _connect(port)
        while (item := take()) is not None:
            n, subject = item
            if rate:
                time.sleep(max(0.0, t0 + n / rate - time.monotonic()))
            form = {"emitter": f"visitor{n}@example.org", "subject": subject, "body": BODY.format(n=n)}
            started = time.monotonic()
            try:
                conn.request("POST", path, urlencode(form), headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn, headers = _connect(port)
                status = type(exc).__name__
            post = Post(subject, started, time.monotonic() - started, status)
            with lock:
                posts.append(post)
        conn.close()

    threads = [threading.Thread(target=client, name=f"peerbench-client{i}") for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return posts


def _connect(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/contact/")
    response = conn.getresponse()
    response.read()
    token = _csrf_token(response)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
        "Cookie": f"csrftoken={token}",
        "X-CSRFToken": token,
    }
    return conn, headers


def _csrf_token(response):
    for name, value in response.getheaders():
        if name.lower() == "set-cookie" and value.startswith("csrftoken="):
            return value.split(";", 1)[0].split("=", 1)[1]
    raise ConnectionError("GET /contact/ set no csrftoken cookie")
