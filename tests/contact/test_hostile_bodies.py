"""Every body the form accepts is delivered promptly: rendered, or as text only, never held or failed.

Real parts: the contact mail task with its Mail's renderer process, and a real SMTP server.
"""

import threading

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from relieve_app.contact.forms import BODY_MAX, BODY_MIN
from tests.contact.test_mail import SENT, make_job, parts, send
from tests.hostile_bodies import HOSTILE_BODIES

pytestmark = pytest.mark.timeout(600)

BOUND = 15.0  # seconds one send may take on a loaded machine; the render's own deadline is 0.5 s
# What Markdown gives meaning to, and what makes it scan, nest or backtrack.
TOKENS = [
    *("[", "]", "(", ")", "![", "](", "[^", "[a]", "]:", "<", ">", "</", "<a ", "<div>", "<!--", "-->"),
    *("<![CDATA[", "<?", "&", "&#", "*", "**", "_", "__", "`", "``", "```", "~~~", "\\", "|", "=", "#"),
    *("- ", "* ", "+ ", "1. ", "> ", ": ", "    ", "\t", "\n", "\n\n", " ", "a", "word ", '"', "{: ", "*["),
]
units = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6).map("".join)
runs = st.tuples(units, st.integers(1, BODY_MAX)).map(lambda r: r[0] * min(r[1], BODY_MAX // len(r[0])))
bodies = (
    st.lists(runs, min_size=1, max_size=3)
    .map(lambda parts: "".join(parts)[:BODY_MAX])
    .filter(lambda body: len(body.strip()) >= BODY_MIN)
)


def send_within_bound(job):
    """The task on its own thread, so a runaway render fails the test instead of hanging it."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("report", send(job)), daemon=True)
    thread.start()
    thread.join(BOUND)
    assert not thread.is_alive(), f"sending a {len(job['body']):,}-character body took over {BOUND}s"
    assert "report" in result, "the task raised: see the thread's exception above"
    return result["report"]


def delivered_as_typed(sink, body):
    (message,) = sink.wait_for(1)
    content = parts(message)
    received = content["text/plain"].replace("\r\n", "\n")
    typed = body.replace("\r\n", "\n").replace("\r", "\n")
    assert received.removesuffix("\n") == typed.removesuffix("\n")  # email ends a text part with one
    return content


@pytest.mark.parametrize("name", HOSTILE_BODIES)
def test_known_hostile_bodies_are_delivered_as_text_without_holding_the_child(mail, smtp_sink, name):
    body = HOSTILE_BODIES[name]

    report = send_within_bound(make_job(body=body))

    content = delivered_as_typed(smtp_sink, body)
    assert "text/html" not in content
    assert report["text_only"] and "as text only" in report["message"]

    smtp_sink.clear()
    assert send_within_bound(make_job(body="*still* rendering after that")) == SENT
    assert "<em>still</em>" in delivered_as_typed(smtp_sink, "*still* rendering after that")["text/html"]


# No shrinking: each try may wait out the render deadline, and the failing body is shown as found.
@settings(
    max_examples=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@given(body=bodies)
def test_any_body_within_the_form_limits_is_delivered_within_the_bound(mail, smtp_sink, body):
    smtp_sink.clear()

    assert send_within_bound(make_job(body=body))["message"].startswith(SENT["message"])

    content = delivered_as_typed(smtp_sink, body)
    if "text/html" in content:  # rendered in time: still sanitised, images still their words only
        assert "<script" not in content["text/html"] and "<img" not in content["text/html"]
