"""The mail child's Markdown renderer, forked warm by the master's zygote, through a real runrelieve."""

import os
import signal
from pathlib import Path

import pytest
from django.test import Client

from relieve_app.models import MailOutcome
from relieve_app.pool.family import members_of
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.e2e

SLOW = "``a`" * 4_999  # within the form's 20,000 characters; seconds of Markdown, past the 0.5 s deadline


def stat_of(pid):
    """(state, ppid, sid) of a process, or None once it is gone (a zombie is gone for our purpose)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between it and the read
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return None if fields[0] == "Z" else (fields[0], int(fields[1]), int(fields[3]))


def forked_by(parent):
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := stat_of(int(entry.name))) and found[1] == parent:
            pids.add(int(entry.name))
    return pids


def post(web, subject, body):
    data = {"emitter": "visitor@example.org", "subject": subject, "body": body}
    response = web.post("/contact/", data, HTTP_ACCEPT="application/json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def sent(smtp_sink, count, ids):
    smtp_sink.wait_for(count, timeout=60)
    wait_until(
        lambda: MailOutcome.objects.filter(pk__in=ids, status="sent").count() == len(ids),
        timeout=30,
        message="the outcomes sent",
    )
    return {str(message["Subject"]): message for message in smtp_sink.messages}


def test_the_mail_childs_renderer_is_forked_by_the_zygote_and_replaced_warm(master, smtp_sink):
    master.start(workers=1)
    children = {child["name"]: child["pid"] for child in master.status()["children"]}
    mail_child = children["mail0"]
    zygote = stat_of(mail_child)[1]
    renderers = lambda: forked_by(zygote) - set(children.values())  # noqa: E731
    web = Client()

    ids = [post(web, "first", "Some **Markdown**, long enough for the form.")]
    html = sent(smtp_sink, 1, ids)["first"].get_body(("html",)).get_content()
    assert "<strong>Markdown</strong>" in html
    (renderer,) = renderers()
    assert stat_of(renderer)[2] == renderer  # a session of its own
    assert renderer not in members_of(mail_child)  # not in the mail child's family

    ids.append(post(web, "slow", SLOW))
    by_subject = sent(smtp_sink, 2, ids)
    assert by_subject["slow"].get_body(("html",)) is None  # past its deadline: text only
    assert stat_of(renderer) is None  # killed, and reaped by the zygote
    (replacement,) = wait_until(renderers, timeout=30, message="a new renderer")
    assert replacement != renderer

    ids.append(post(web, "again", "*again*, and long enough for the form."))
    assert "<em>again</em>" in sent(smtp_sink, 3, ids)["again"].get_body(("html",)).get_content()
    assert renderers() == {replacement}  # the warm replacement rendered it

    # A child that dies leaves its renderer to end on its own: its stdin reads end of file. (Its
    # replacement starts no renderer before its first mail.)
    os.kill(mail_child, signal.SIGKILL)
    wait_until(lambda: stat_of(replacement) is None, timeout=30, message="the renderer to end")


def test_the_mail_children_share_one_renderer_which_outlives_any_one_of_them(master, smtp_sink):
    master.start(workers=2)
    mail_children = lambda: {  # noqa: E731
        child["name"]: child for child in master.status()["children"] if child["queue"] == "mail"
    }
    names = set(mail_children())
    assert len(names) == 2
    pids = {child["pid"] for child in master.status()["children"]}
    zygote = stat_of(mail_children()["mail0"]["pid"])[1]
    renderers = lambda: forked_by(zygote) - pids  # noqa: E731
    web = Client()

    ids = []
    while not all(child["done"] for child in mail_children().values()):  # each child has sent one
        assert len(ids) < 60, mail_children()
        for n in range(len(ids), len(ids) + 6):  # a burst: the least busy child is not always the first
            ids.append(post(web, f"mail {n}", f"Mail **{n}**, long enough for the form."))
        sent(smtp_sink, len(ids), ids)
    by_subject = sent(smtp_sink, len(ids), ids)
    for n in range(len(ids)):
        assert f"<strong>{n}</strong>" in by_subject[f"mail {n}"].get_body(("html",)).get_content()
    (renderer,) = renderers()  # one for both children

    os.kill(mail_children()["mail0"]["pid"], signal.SIGKILL)  # one child dies: the other still has it
    ids.append(post(web, "after", "Rendered by the *same* renderer, long enough for the form."))
    assert "<em>same</em>" in sent(smtp_sink, len(ids), ids)["after"].get_body(("html",)).get_content()
    assert stat_of(renderer) is not None
