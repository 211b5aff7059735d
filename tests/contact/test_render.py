"""The renderer: Markdown in a process of its own, killed past its deadline, text only as the fallback.

Each test runs twice: with the renderer started cold (a fresh interpreter, as in a process no zygote
forked) and forked warm by a zygote (as in a child of the master's zygote; here this test process is
that zygote's parent, and asks it as a child does).
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from relieve_app.contact.render import Renderer
from relieve_app.pool.zygote_spawn import Helper
from tests.zygote_process import attached_zygote

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]

NORMAL = "Hello **there**\r\n\r\n- one\r\n- two\r\n\r\n![tracker words](http://evil.example/t.png)"
# Not caught by shape.py, so only the deadline stops it: quadratic, about a minute of Markdown.
SLOW = "``a`" * 20_000


@pytest.fixture(params=["cold", "warm"])
def start(request):
    """How renderers start here: "cold", or "warm" with the zygote's Popen as ``start.zygote``."""
    if request.param == "cold":
        yield Start("cold", None)
        return
    with attached_zygote() as zygote:
        yield Start("warm", zygote)


@pytest.fixture
def warm():
    with attached_zygote() as zygote:
        yield Start("warm", zygote)


class Start:
    def __init__(self, kind, zygote):
        self.kind = kind
        self.zygote = zygote

    def check(self, process):
        """``process`` started the way this test asked for."""
        if self.kind == "cold":
            assert isinstance(process, subprocess.Popen)
            assert parent_of(process.pid) == os.getpid()
        else:
            assert isinstance(process, Helper)
            assert parent_of(process.pid) == self.zygote.pid


def gone(pid):
    """Ended and reaped, by whichever process is its parent."""
    return not Path(f"/proc/{pid}").exists()


def parent_of(pid):
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


@pytest.fixture
def renderer(start):
    with Renderer(timeout=0.5) as renderer:
        yield renderer


def test_normal_body_renders_text_and_sanitised_html(renderer, start):
    rendered = renderer.render(NORMAL)
    start.check(renderer.process)
    assert rendered.text == "Hello **there**\n\n- one\n- two\n\n![tracker words](http://evil.example/t.png)"
    assert "<strong>there</strong>" in rendered.html and "<li>one</li>" in rendered.html
    assert "tracker words" in rendered.html and "evil.example" not in rendered.html
    assert rendered.fallback is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("- " * 500 + "x", "nested 500 levels"),
        ("[" * 19_999, "brackets"),
        ("a\n: b\n" * 500, "RecursionError"),
    ],
    ids=["nesting", "brackets", "definition-lists"],
)
def test_bodies_markdown_cannot_render_go_out_as_text_only(renderer, body, reason):
    rendered = renderer.render(body)
    assert rendered.html is None
    assert reason in rendered.fallback
    assert rendered.text == body


def test_a_render_past_its_deadline_kills_the_renderer_and_the_next_one_starts_afresh(renderer, start):
    renderer.render("warm *up*")
    first = renderer.process.pid
    start.check(renderer.process)

    rendered = renderer.render(SLOW)

    assert rendered.html is None and "took over 0.5s" in rendered.fallback
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)  # killed and reaped
    replacement = renderer.process.pid  # already starting while the mail goes out
    assert replacement != first
    assert "<em>back</em>" in renderer.render("*back*").html
    assert renderer.process.pid == replacement
    start.check(renderer.process)  # the replacement started as the first did


def test_an_idle_renderer_is_stopped_and_the_next_render_starts_another(start):
    with Renderer(timeout=5, idle_timeout=0.5) as renderer:
        renderer.render("warm *up*")
        first = renderer.process
        for _ in range(8):  # renders closer together than the idle timeout keep it
            time.sleep(0.1)
            renderer.render("*busy*")
        assert renderer.process is first

        deadline = time.monotonic() + 30
        while (renderer.process is not None or not gone(first.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)  # the watch lets go of the process before it is reaped
        assert renderer.process is None and gone(
            first.pid
        )  # ended (a shared one: its last asker left), reaped

        assert "<em>again</em>" in renderer.render("*again*").html
        assert renderer.process.pid != first.pid
        start.check(renderer.process)


def test_a_renderer_killed_between_renders_is_replaced(renderer):
    renderer.render("warm *up*")
    os.kill(renderer.process.pid, signal.SIGKILL)
    renderer.process.wait()

    assert "<em>again</em>" in renderer.render("*again*").html


def test_a_renderer_killed_during_a_render_is_text_only_and_replaced(start):
    """A renderer of its own that dies in a render gives text only; a shared one, which another
    child's deadline may have ended, is asked once more, and only a second death gives text only."""
    with Renderer(timeout=60) as renderer:
        renderer.render("warm *up*")
        killed = []
        rendering = threading.Event()

        def kill_each_renderer():
            while not rendering.is_set():
                process = renderer.process
                if process is not None and process.pid not in killed:
                    time.sleep(0.5)
                    killed.append(process.pid)
                    os.kill(process.pid, signal.SIGKILL)
                time.sleep(0.05)

        killer = threading.Thread(target=kill_each_renderer)
        killer.start()
        rendered = renderer.render(SLOW)  # each kill comes long before its end
        rendering.set()
        killer.join()

        assert rendered.html is None
        assert "exited with -9" in rendered.fallback
        assert len(killed) == (1 if start.kind == "cold" else 2)
        assert "<em>again</em>" in renderer.render("*again*").html


def test_a_shared_renderer_ended_at_another_childs_deadline_renders_once_more(warm):
    """Two askers of the zygote's one renderer: a body that waited behind one killed at its deadline
    is sent again to the next renderer, and gets its HTML."""
    with Renderer(timeout=0.5) as slow, Renderer(timeout=5) as quick:
        slow.render("warm *up*")
        quick.render("warm *up*")
        assert slow.process.pid == quick.process.pid  # one process for both
        first = slow.process.pid
        results = {}
        thread = threading.Thread(target=lambda: results.update(slow=slow.render(SLOW)))
        thread.start()
        time.sleep(0.2)  # the slow render is under way: the quick one waits behind it
        rendered = quick.render("*quick*")
        thread.join()

        assert results["slow"].html is None and "took over 0.5s" in results["slow"].fallback
        assert rendered.fallback is None and "<em>quick</em>" in rendered.html
        assert gone(first) and quick.process.pid != first
        warm.check(quick.process)


def test_the_renderer_ends_itself_when_its_parent_goes_away(renderer):
    """Its stdin closes: end of file. What a renderer sees when the child holding it is killed (a
    warm one is not in the child's family: this is how it ends, see test_warm_renderer.py)."""
    renderer.render("warm *up*")
    process = renderer.process
    process.stdin.close()
    assert process.wait(timeout=30) == 0
    renderer.process = None


def test_renders_from_several_threads_are_taken_one_at_a_time(renderer):
    results = {}

    def render(n):
        results[n] = renderer.render(f"**{n}**")

    threads = [threading.Thread(target=render, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    counts = {n: rendered.html.count(f"<strong>{n}</strong>") for n, rendered in results.items()}
    assert counts == dict.fromkeys(range(6), 1)


def test_a_body_too_large_for_a_frame_is_text_only_not_an_error(renderer):
    body = "x" * (2 << 20)
    rendered = renderer.render(body)
    assert rendered.html is None and "cannot be sent" in rendered.fallback


def test_a_render_left_running_by_a_dead_parent_is_ended_by_its_cpu_limit():
    """No parent is left to kill it: the kernel does, once the render used its CPU budget."""
    code = "from relieve_app.contact.render_process import limit_cpu\nlimit_cpu(1)\nwhile True: pass"
    runaway = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120)
    assert runaway.returncode == -signal.SIGXCPU


def test_the_renderer_starts_from_any_working_directory(start, tmp_path, monkeypatch):
    """A web server or a master started elsewhere than the project's folder still renders HTML."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    with Renderer(timeout=5) as renderer:
        rendered = renderer.render("*any*")
    assert rendered.fallback is None and "<em>any</em>" in rendered.html


def test_a_renderer_the_zygote_refuses_starts_cold(warm, monkeypatch):
    monkeypatch.setattr("relieve_app.contact.render.WARM_TARGET", "relieve_app.contact.no_such_module:main")
    with Renderer(timeout=5) as renderer:
        assert "<em>cold</em>" in renderer.render("*cold*").html
        assert isinstance(renderer.process, subprocess.Popen)


def test_a_renderer_whose_zygote_is_gone_starts_cold(warm):
    with Renderer(timeout=5) as renderer:
        renderer.render("*warm*")
        warm.check(renderer.process)
        warm.zygote.kill()
        warm.zygote.wait()
        os.kill(renderer.process.pid, signal.SIGKILL)
        assert renderer.process.wait() is None  # no zygote is left to report its code
        assert "<em>cold</em>" in renderer.render("*cold*").html
        assert isinstance(renderer.process, subprocess.Popen)
