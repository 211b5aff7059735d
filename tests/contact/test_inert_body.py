"""From the form to the recipient: hostile markup is kept as the visitor's data and rendered inert.

tests/contact/test_mail.py covers the rendering itself; this is the link from a post through the view.
"""

import json

import pytest

from relieve_app.contact.render import render_once
from relieve_app.models import MailOutcome

pytestmark = pytest.mark.django_db

URL = "/contact/"
HOSTILE = """Hello, a message long enough to be sent.

<script>alert("script")</script>
<a href="javascript:alert('raw')">raw link</a> and [md link](javascript:alert('md'))
<img src=http://elsewhere.example/pixel.png onerror="alert('onerror')">
![tracker](https://elsewhere.example/track.png) <svg onload="alert('svg')"></svg>"""
ACTIVE = ("<script", "alert", "javascript:", "<img", "<svg", "elsewhere.example", "onerror", "onload")


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_hostile_body_is_stored_as_is_and_rendered_inert(client, master_socket, as_json):
    data = {"emitter": "ada@example.com", "subject": "<b>hi</b>", "body": HOSTILE}
    if as_json:
        response = client.post(URL, json.dumps(data), content_type="application/json")
    else:
        response = client.post(URL, data)

    assert response.status_code == (202 if as_json else 303)
    row = MailOutcome.objects.get()
    assert row.body == HOSTILE  # data: kept for the admin exactly as written
    html = render_once(row.body).html
    for active in ACTIVE:
        assert active not in html
    assert "raw link" in html and "md link" in html


def test_the_form_shown_again_escapes_what_the_visitor_wrote(client, master_socket):
    data = {"emitter": "ada@example.com", "subject": "<script>alert(1)</script>", "body": "too short"}

    response = client.post(URL, data)

    assert response.status_code == 400
    content = response.content.decode()
    assert "<script>alert(1)</script>" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content
