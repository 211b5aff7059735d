"""Spam defences of the contact page: the per-client rate limit and the honeypot field."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from relieve_app.contact.ratelimit import Rate, RateLimiter, client_address, parse_rate
from relieve_app.models import MailOutcome

ROOT = Path(__file__).resolve().parents[2]

URL = "/contact/"
VALID = {"emitter": "ada@example.com", "subject": "Hello", "body": "A message long enough to be sent along."}
JSON_ACCEPT = {"Accept": "application/json"}


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def cache():
    cache = LocMemCache("test-spam", {})
    yield cache
    cache.clear()


@pytest.fixture
def limited(settings):
    """Two posts per day from one address, counted in a cache emptied before and after the test.

    A day, so that a window boundary cannot fall between two posts of a test (time is not passed in
    through the view); the windows themselves are tested on RateLimiter with a clock.
    """
    settings.CONTACT_RATE_LIMIT = "2/d"
    caches["default"].clear()
    yield
    caches["default"].clear()


# Parsing and the setting's check


@pytest.mark.parametrize(
    ("value", "rate"),
    [
        ("5/m", Rate(5, 60)),
        ("1/s", Rate(1, 1)),
        (" 100 / h ", Rate(100, 3600)),
        ("10/5m", Rate(10, 300)),
        ("3/2d", Rate(3, 172_800)),
        ("", None),
        ("  ", None),
        (None, None),
    ],
)
def test_parse_rate(value, rate):
    assert parse_rate(value) == rate


@pytest.mark.parametrize(
    "value", ["5", "5/min", "m/5", "5/x", "-1/m", "5/0m", "5/m/h", "1.5/m", "\u0665/m", 5]
)
def test_a_bad_rate_names_the_setting_and_the_format(value):
    with pytest.raises(ImproperlyConfigured, match=r"CONTACT_RATE_LIMIT = .* is not a rate.*'5/m'"):
        parse_rate(value)


def test_a_zero_rate_is_refused_with_a_reason():
    with pytest.raises(ImproperlyConfigured, match="would refuse every message"):
        parse_rate("0/m")


@pytest.mark.django_db  # the model checks ask the database about JSON support
def test_a_bad_rate_is_a_system_check_error(settings):
    settings.CONTACT_RATE_LIMIT = "5 per minute"

    errors = [message for message in checks.run_checks() if message.id == "relieve_app.E001"]

    assert len(errors) == 1
    assert errors[0].level == checks.ERROR
    assert "CONTACT_RATE_LIMIT = '5 per minute'" in errors[0].msg


def test_a_bad_rate_stops_runrelieve_and_closes_the_contact_page(settings, client):
    """gunicorn runs no system checks: the page refuses rather than answer a visitor's post with a 500."""
    env = {**os.environ, "CONTACT_RATE_LIMIT": "5 per minute", "DJANGO_SETTINGS_MODULE": "project.settings"}
    started = subprocess.run(
        [sys.executable, "manage.py", "runrelieve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert "CONTACT_RATE_LIMIT = '5 per minute' is not a rate" in started.stderr
    assert "Traceback" not in started.stderr

    settings.CONTACT_RATE_LIMIT = "5 per minute"
    assert client.post("/contact/", {"emitter": "a@example.org"}).status_code == 503


@pytest.mark.django_db
def test_a_good_rate_passes_the_checks(settings):
    settings.CONTACT_RATE_LIMIT = "5/m"

    assert not [m for m in checks.run_checks() if m.id == "relieve_app.E001"]


@pytest.mark.django_db
def test_deploy_check_warns_about_a_per_process_cache(settings):
    settings.CONTACT_RATE_LIMIT = "5/m"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

    warnings = [m for m in checks.run_checks(include_deployment_checks=True) if m.id == "relieve_app.W001"]

    assert len(warnings) == 1
    assert "Point CACHES['default'] at a cache the web processes share" in warnings[0].hint
    assert "CACHE_URL" not in warnings[0].hint  # only this repository's project reads that


# The limiter, with time passed in


def test_limit_then_retry_after_until_the_post_leaves_the_window(cache):
    clock = Clock(600.0)  # the start of a 6 s slice of a one-minute window
    limiter = RateLimiter(Rate(3, 60), cache, now=clock)

    assert [limiter.hit("10.0.0.1") for _ in range(3)] == [None, None, None]
    assert limiter.hit("10.0.0.1") == 66  # remembered for the minute and the slice it was in
    clock.now = 642.5
    assert limiter.hit("10.0.0.1") == 24  # 23.5 seconds left, rounded up
    clock.now = 666.0
    assert limiter.hit("10.0.0.1") is None


def test_clients_are_counted_apart(cache):
    limiter = RateLimiter(Rate(1, 60), cache, now=Clock(0.0))

    assert limiter.hit("10.0.0.1") is None
    assert limiter.hit("10.0.0.1") == 66
    assert limiter.hit("10.0.0.2") is None
    assert limiter.hit("2001:db8::1") is None


def test_multiplied_period(cache):
    clock = Clock(0.0)
    limiter = RateLimiter(parse_rate("2/5m"), cache, now=clock)

    assert limiter.hit("c") is None
    assert limiter.hit("c") is None
    clock.now = 329.0
    assert limiter.hit("c") == 1
    clock.now = 330.0
    assert limiter.hit("c") is None


def test_a_burst_across_a_window_boundary_is_still_limited(cache):
    """A fixed window aligned on the clock let twice the limit through around its boundary."""
    clock = Clock(58.0)
    limiter = RateLimiter(Rate(2, 60), cache, now=clock)

    assert [limiter.hit("c"), limiter.hit("c")] == [None, None]
    clock.now = 61.0
    assert limiter.hit("c") == 59  # the posts of 58 s are forgotten at 120 s, never before 118 s


def test_the_wait_counts_down_to_the_moment_a_post_is_accepted(cache):
    clock = Clock(0.0)
    limiter = RateLimiter(Rate(2, 60), cache, now=clock)
    limiter.hit("c")
    clock.now = 30.0
    limiter.hit("c")

    waits = []
    for now in (40.0, 50.0, 65.5):
        clock.now = now
        waits.append(limiter.hit("c"))
    assert waits == [26, 16, 1]
    clock.now = 66.0
    assert limiter.hit("c") is None  # the post of 0 s has left the window
    clock.now = 67.0
    assert limiter.hit("c") == 29  # the post of 30 s leaves it at 96 s


@pytest.mark.parametrize("limit", [1, 3, 10])
def test_no_window_of_one_period_ever_holds_more_than_the_limit(cache, limit):
    """A client posting every 0.7 s for ten minutes: count what any 60 s window let through."""
    clock = Clock(0.0)
    limiter = RateLimiter(Rate(limit, 60), cache, now=clock)
    accepted = []
    for step in range(0, 6000, 7):
        clock.now = step / 10
        if limiter.hit("c") is None:
            accepted.append(clock.now)
    assert len(accepted) >= 9 * limit  # it still lets the limit through each period and a tenth
    for index, start in enumerate(accepted):
        in_window = [at for at in accepted[index:] if at < start + 60]
        assert len(in_window) <= limit


def test_the_cost_of_a_post_does_not_grow_with_the_limit(cache):
    """What the cache is asked per post is the same at 5/m and 100000/m."""

    class Counting:
        def __init__(self, inner):
            self.inner, self.keys = inner, 0

        def get_many(self, keys):
            self.keys += len(keys)
            return self.inner.get_many(keys)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    small, large = Counting(cache), Counting(cache)
    RateLimiter(Rate(5, 60), small, scope="a", now=Clock(0.0)).hit("c")
    RateLimiter(Rate(100000, 60), large, scope="b", now=Clock(0.0)).hit("c")
    assert small.keys == large.keys == 11


def test_two_limiters_taking_the_last_slot_let_only_one_through(cache):
    """The loser of a race sees the sum over the limit after its increment and gives its slot back."""
    clock = Clock(0.0)
    first = RateLimiter(Rate(1, 60), cache, now=clock)

    class Stale:
        """A second process that read the counters before the first one's increment."""

        def get_many(self, keys):
            return {}

        def __getattr__(self, name):
            return getattr(cache, name)

    assert first.hit("c") is None
    assert RateLimiter(Rate(1, 60), Stale(), now=clock).hit("c") == 66
    clock.now = 1.0
    assert first.hit("c") == 65  # the slot given back is not counted twice


def test_a_failing_cache_lets_messages_through_and_says_so(caplog):
    class Broken:
        def get_many(self, *args):
            raise ConnectionError("cache is down")

    limiter = RateLimiter(Rate(1, 60), Broken(), now=Clock(0.0))

    with caplog.at_level(logging.ERROR, logger="relieve_app"):
        assert limiter.hit("c") is None
        assert limiter.hit("c") is None
    assert "Rate limit not applied" in caplog.text


# The limit on the view


@pytest.mark.django_db
@pytest.mark.usefixtures("limited")
def test_over_the_limit_is_429_with_retry_after_and_keeps_the_message(client, master_socket):
    assert [client.post(URL, VALID).status_code for _ in range(2)] == [303, 303]

    response = client.post(URL, {**VALID, "body": "Kept for the visitor to send again later."})

    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 86_400 * 1.1  # a day, and at most a slice more
    content = response.content.decode()
    assert f"Please wait {response['Retry-After']} seconds" in content
    assert "Kept for the visitor to send again later." in content
    assert MailOutcome.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.usefixtures("limited")
def test_over_the_limit_in_json(client, master_socket):
    for _ in range(2):
        client.post(URL, json.dumps(VALID), content_type="application/json")

    response = client.post(URL, json.dumps(VALID), content_type="application/json")

    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    assert int(response["Retry-After"]) >= 1
    assert "too many messages" in response.json()["errors"]["__all__"][0]
    assert MailOutcome.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.usefixtures("limited")
def test_each_address_has_its_own_limit(client, master_socket):
    statuses = [
        client.post(URL, VALID, headers=JSON_ACCEPT, REMOTE_ADDR=address).status_code
        for address in ["192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.2"]
    ]

    assert statuses == [202, 202, 429, 202, 202]
    assert MailOutcome.objects.count() == 4


@pytest.mark.django_db
def test_forwarded_for_is_not_a_way_around_the_limit(client, master_socket, limited):
    statuses = [
        client.post(URL, VALID, headers={**JSON_ACCEPT, "X-Forwarded-For": f"198.51.100.{n}"}).status_code
        for n in range(3)
    ]

    assert statuses == [202, 202, 429]


@pytest.mark.django_db
def test_no_limit_when_empty(client, master_socket, settings):
    settings.CONTACT_RATE_LIMIT = ""

    statuses = {client.post(URL, VALID, headers=JSON_ACCEPT).status_code for _ in range(12)}

    assert statuses == {202}


# The honeypot


def test_the_trap_is_out_of_sight_and_out_of_reach(client):
    content = client.get(URL).content.decode()

    assert '<div class="trap" aria-hidden="true">' in content
    assert 'name="website"' in content
    assert 'autocomplete="off"' in content
    assert 'tabindex="-1"' in content


@pytest.mark.django_db
def test_a_filled_trap_looks_like_success_but_nothing_is_kept(client, fake_master, caplog):
    master = fake_master()

    with caplog.at_level(logging.INFO, logger="relieve_app"):
        page = client.post(URL, {**VALID, "website": "http://spam.example"})
        data = client.post(URL, json.dumps({**VALID, "website": "x"}), content_type="application/json")

    assert page.status_code == 303
    assert "queued" in client.get(page["Location"]).content.decode()
    assert data.status_code == 202
    reference = data.json()["reference"]
    assert data.json() == {
        "id": None,
        "reference": reference,
        "status": "queued",
        "status_url": f"/contact/status/{reference}/",
    }
    assert len(reference) == 32  # as long as a real one
    assert client.get(data.json()["status_url"]).json()["status"] == "queued"
    assert not MailOutcome.objects.exists()
    assert master.requests == []
    assert "hidden 'website' field was filled" in caplog.text


@pytest.mark.django_db
def test_a_filled_trap_on_an_invalid_message_is_an_ordinary_400(client):
    response = client.post(URL, {**VALID, "body": "short", "website": "x"}, headers=JSON_ACCEPT)

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["body"]


# Only accepted posts count


@pytest.mark.django_db
@pytest.mark.usefixtures("limited")
def test_invalid_posts_do_not_count_against_the_limit(client, master_socket):
    typos = [
        client.post(URL, {**VALID, "emitter": "ada@"}, headers=JSON_ACCEPT).status_code for _ in range(3)
    ]
    sent = [client.post(URL, VALID, headers=JSON_ACCEPT).status_code for _ in range(3)]

    assert typos == [400, 400, 400]
    assert sent == [202, 202, 429]
    assert MailOutcome.objects.count() == 2


# Behind a reverse proxy


def forwarded(remote, chain=None):
    request = RequestFactory().post(URL, REMOTE_ADDR=remote)
    if chain is not None:
        request.META["HTTP_X_FORWARDED_FOR"] = chain
    return client_address(request)


def test_forwarded_for_is_read_only_from_a_trusted_proxy(settings):
    settings.CONTACT_TRUSTED_PROXIES = ["10.0.0.0/8", "192.0.2.10"]

    assert forwarded("198.51.100.1", "203.0.113.5") == "198.51.100.1"  # not a proxy: its header is ignored
    assert forwarded("192.0.2.10", "203.0.113.5") == "203.0.113.5"
    # The client can write the left of the header; the rightmost address no trusted proxy holds is real.
    assert forwarded("192.0.2.10", "1.2.3.4, 203.0.113.5, 10.1.2.3") == "203.0.113.5"
    assert forwarded("192.0.2.10") == "192.0.2.10"  # no header: the proxy itself
    assert forwarded("192.0.2.10", "10.0.0.1, 10.0.0.2") == "192.0.2.10"  # only proxies
    assert forwarded("192.0.2.10", "not-an-address") == "192.0.2.10"
    assert forwarded("192.0.2.10", "2001:db8::1") == "2001:db8::1"


def test_no_trusted_proxy_by_default(settings):
    del settings.CONTACT_TRUSTED_PROXIES  # the app's default applies

    assert forwarded("127.0.0.1", "203.0.113.5") == "127.0.0.1"


@pytest.mark.django_db
@pytest.mark.usefixtures("limited")
def test_behind_a_trusted_proxy_each_visitor_has_their_own_limit(client, master_socket, settings):
    settings.CONTACT_TRUSTED_PROXIES = ["127.0.0.1"]

    def post(visitor):
        headers = {**JSON_ACCEPT, "X-Forwarded-For": visitor}
        return client.post(URL, VALID, headers=headers, REMOTE_ADDR="127.0.0.1").status_code

    assert [post("198.51.100.1") for _ in range(3)] == [202, 202, 429]
    assert [post("198.51.100.2") for _ in range(2)] == [202, 202]


@pytest.mark.parametrize("value", ["10.0.0.1", ["10.0.0.300"], [None], "*"])
def test_a_bad_trusted_proxy_setting_is_a_system_check_error(settings, value):
    settings.CONTACT_TRUSTED_PROXIES = value

    errors = [m for m in checks.run_checks() if m.id == "relieve_app.E010"]

    assert len(errors) == 1
    assert "CONTACT_TRUSTED_PROXIES" in errors[0].msg
