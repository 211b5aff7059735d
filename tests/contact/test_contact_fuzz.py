"""Whatever is posted to the contact page, the answer is 202, 303, 400 or 413, never a 500.

And the database agrees with the answer: a row after a 202 or 303 (none when the honeypot was filled), none
otherwise. Each test runs one Django test transaction for all its examples, so rows are counted per
example. The rate limit is off here (tests/web_fixtures.py); test_spam.py covers 429.
"""

import json

import pytest
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from relieve_app.models import MailOutcome

pytestmark = pytest.mark.django_db

URL = "/contact/"
ACCEPTED = {202, 303}  # JSON, and the redirect of a form post to its thank-you page
ANSWERS = {*ACCEPTED, 400, 413}
FIELDS = ("emitter", "subject", "body", "website")
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Long strings by repetition: hypothesis draws a few characters, not 20,000.
long_text = st.builds(
    lambda piece, times: piece * times, st.text(min_size=1, max_size=4), st.integers(0, 25_000)
)
text = st.one_of(st.text(max_size=60), long_text)
emitter = st.one_of(st.emails(), st.sampled_from(["ada@example.com", "ada@exa\u2028mple.com"]), text)
body = st.one_of(st.just("A message long enough to be sent along, surely."), text)
honeypot = st.one_of(st.just(""), st.just("http://spam.example"), text)
form = st.fixed_dictionaries(
    {"emitter": emitter, "subject": text, "body": body},
    optional={"website": honeypot, "extra": text},
)
accept = st.one_of(
    st.none(), st.sampled_from(["application/json", "text/html", "*/*", "a/b;q=x,,"]), st.text()
)

# JSON: any value where a field is expected, lone surrogates included (json.loads lets "\ud800" in).
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), text, st.characters(categories=["Cs"])
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner), max_leaves=10
)
json_object = st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)), values, max_size=6)
valid_object = st.fixed_dictionaries({"emitter": emitter, "subject": values, "body": body})
content_type = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-16",
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=latin-1",
        "multipart/form-data",
        "multipart/form-data; boundary=b",
        "multipart/form-data; boundary=",
        "text/plain",
        "",
    ]
)
garbage = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda b: b"emitter=ada%40example.com&subject=%ff%fe&body=" + b, st.binary(max_size=200)),
    st.builds(
        lambda b: b'--b\r\nContent-Disposition: form-data; name="body"\r\n\r\n' + b, st.binary(max_size=200)
    ),
)


@pytest.fixture
def web(fake_master):
    fake_master()
    return Client(raise_request_exception=False)  # a 500 must show as a 500, not as an exception


@pytest.fixture
def post(web, django_capture_on_commit_callbacks):
    """Post, then check the answer against the rows it created.

    `trapped`: the honeypot may be filled (or cannot be told from the raw body), so a 202 may store nothing.
    """

    def post(data, trapped=False, **kwargs):
        before = MailOutcome.objects.count()
        with django_capture_on_commit_callbacks(execute=True):
            if isinstance(data, dict):
                response = web.post(URL, data, **kwargs)  # multipart, encoded by the test client
            else:  # sent as is: Client.post would re-encode it for the charset in the content type
                response = web.generic("POST", URL, data, **kwargs)
        event(f"status {response.status_code}")  # the spread shows with --hypothesis-show-statistics
        assert response.status_code in ANSWERS, response.content[:2000]
        created = MailOutcome.objects.count() - before
        if response.status_code in ACCEPTED:
            assert created == 1 or (trapped and created == 0)
        else:
            assert created == 0
        return response

    return post


def headers(accept):
    return {} if accept is None else {"Accept": accept}


def filled(data):
    return isinstance(data.get("website"), str) and bool(data["website"].strip())


@FUZZ
@given(data=form, accept=accept, multipart=st.booleans())
def test_any_form(post, data, accept, multipart):
    if multipart:
        post(data, headers=headers(accept), trapped=filled(data))
    else:
        encoded = "&".join(f"{key}={value}" for key, value in data.items())  # '&' and '=' in values: fine
        kind = "application/x-www-form-urlencoded"
        post(encoded, content_type=kind, headers=headers(accept), trapped=True)


@FUZZ
@given(data=st.one_of(json_object, valid_object, values), accept=accept)
def test_any_json(post, data, accept):
    body = json.dumps(data)  # ensure_ascii: lone surrogates travel as \ud800 escapes
    trapped = isinstance(data, dict) and filled(data)
    post(body, content_type="application/json", headers=headers(accept), trapped=trapped)


@FUZZ
@given(body=garbage, kind=content_type, accept=accept)
def test_any_bytes(post, body, kind, accept):
    post(body, content_type=kind, headers=headers(accept), trapped=True)
