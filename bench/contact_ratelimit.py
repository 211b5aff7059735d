"""What CONTACT_RATE_LIMIT costs a contact POST, at a small limit and at a huge one.

Usage: python bench/contact_ratelimit.py [--posts 2000]

Two measures, in this process, on the local-memory cache (a shared cache adds its round trips, the
same number at every limit: one read of SLICES + 1 keys and one increment):
- the limiter alone: ``RateLimiter.hit`` for one client, ``--posts`` times, at 5/m, 1000/h and
  100000/m; the median in microseconds;
- the whole POST /contact/ through Django's test client and its middleware, on a fresh SQLite
  file with no master (the task waits in its row), at 100000/m and with no limit; the median in ms.
The last line is for scripts:
``contact-ratelimit limiter-us 5/m=... 1000/h=... 100000/m=... post-p50-ms limit=... none=...``.
The target: under 1 ms of limiter time per POST at 100000/m.
"""

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RATES = ["5/m", "1000/h", "100000/m"]
TARGET_US = 1000


def configure(folder):
    os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'bench.sqlite3'}"
    os.environ["RELIEVE_SOCKET"] = str(folder / "relieve.sock")  # no master: the rows wait for one
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    logging.getLogger("relieve_app").setLevel(logging.ERROR)
    logging.getLogger("django").setLevel(logging.ERROR)


def limiter_us(rate_text, posts):
    from django.core.cache.backends.locmem import LocMemCache

    from relieve_app.contact.ratelimit import RateLimiter, parse_rate

    limiter = RateLimiter(parse_rate(rate_text), LocMemCache(f"bench-{rate_text}", {}))
    times = []
    for _ in range(posts):
        start = time.perf_counter()
        limiter.hit("10.0.0.1")
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def post_ms(rate_text, posts):
    from django.core.cache import cache
    from django.test import Client, override_settings

    cache.clear()
    client = Client()
    body = {
        "emitter": "visitor@example.com",
        "subject": "Hello",
        "body": "A message long enough to pass the form's checks.",
    }
    times = []
    with override_settings(CONTACT_RATE_LIMIT=rate_text):
        for _ in range(posts):
            start = time.perf_counter()
            response = client.post("/contact/", body, HTTP_ACCEPT="application/json")
            times.append(time.perf_counter() - start)
            assert response.status_code == 202, response.content[:300]
    return statistics.median(times) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=2000, help="Posts per measure (default 2000).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relieve-ratelimit-") as folder:
        configure(Path(folder))
        limiter = {rate: limiter_us(rate, args.posts) for rate in RATES}
        posts = min(args.posts, 500)
        with_limit, without = post_ms("100000/m", posts), post_ms("", posts)
    for rate, micros in limiter.items():
        print(f"limiter at {rate:>9}: median {micros:8.1f} µs per post")
    print(f"POST /contact/: median {with_limit:.2f} ms at 100000/m, {without:.2f} ms with no limit")
    verdict = "met" if limiter["100000/m"] < TARGET_US else "MISSED"
    print(f"target: limiter under {TARGET_US} µs at 100000/m: {verdict}")
    print(
        "contact-ratelimit limiter-us "
        + " ".join(f"{rate}={micros:.1f}" for rate, micros in limiter.items())
        + f" post-p50-ms limit={with_limit:.2f} none={without:.2f}"
    )


if __name__ == "__main__":
    main()
