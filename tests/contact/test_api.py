"""The JSON API as docs/reference/api.md documents it: a token from a GET, a post, and every error in JSON."""

import json

import pytest
from django.test import Client

from relieve_app.models import MailOutcome

pytestmark = pytest.mark.django_db

URL = "/contact/"
VALID = {"emitter": "ada@example.com", "subject": "Hello", "body": "A message long enough to be sent along."}
JSON_ACCEPT = {"Accept": "application/json"}


@pytest.fixture
def api():
    return Client(enforce_csrf_checks=True, headers=JSON_ACCEPT)


def post_json(api, data, **extra):
    return api.post(URL, json.dumps(data), content_type="application/json", **extra)


def test_an_api_client_gets_a_token_posts_and_follows_its_message(api, master_socket):
    form = api.get(URL)
    assert form.status_code == 200
    token = form.json()["csrf_token"]
    assert form.json()["fields"] == ["emitter", "subject", "body"]
    assert "csrftoken" in api.cookies

    posted = post_json(api, VALID, headers={"X-CSRFToken": token})

    assert posted.status_code == 202
    status = api.get(posted.json()["status_url"])
    assert status.json()["status"] == "queued"
    assert MailOutcome.objects.count() == 1


@pytest.mark.parametrize("as_form", [False, True], ids=["json-body", "form-body"])
def test_a_missing_csrf_token_is_a_json_403_that_says_how_to_get_one(api, as_form):
    response = api.post(URL, VALID) if as_form else post_json(api, VALID)

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    [message] = response.json()["errors"]["__all__"]
    assert "CSRF" in message and "X-CSRFToken" in message
    assert ".." not in message  # Django's reason ends in its own full stop
    assert not MailOutcome.objects.exists()


def test_a_browser_still_gets_the_html_403():
    response = Client(enforce_csrf_checks=True).post(URL, VALID)

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_other_methods_are_a_json_405(api, method):
    response = getattr(api, method)(URL, "{}", content_type="application/json")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD, POST"
    assert "not allowed" in response.json()["errors"]["__all__"][0]


def test_a_post_to_the_status_endpoint_is_a_json_405(api):
    response = api.post(f"{URL}status/whatever/", "{}", content_type="application/json")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", ["nowhere/", "thanks/", "status/a/b/", "status"])
def test_an_unknown_address_under_the_app_is_a_json_404(api, path):
    response = api.get(URL + path)

    assert response.status_code == 404
    assert response.json() == {"errors": {"__all__": ["There is nothing at this address."]}}


def test_an_unknown_address_is_html_for_a_browser(client):
    response = client.get(f"{URL}nowhere/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
