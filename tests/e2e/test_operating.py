"""Operating a running master: its status in full, restart counts, reloads under load, failure notices."""

import ctypes
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from django.test import Client

from relieve_app.models import MailOutcome, TaskEvent, UsageSample
from relieve_app.tasks import client
from tests.e2e.conftest import ROOT, wait_until
from tests.e2e.test_delivery import all_sent, post

pytestmark = pytest.mark.e2e


def relievestatus(master, *options, timeout=30):
    argv = [sys.executable, "manage.py", "relievestatus", "--socket", master.socket_path, *options]
    return subprocess.run(argv, cwd=ROOT, env=master.env, capture_output=True, text=True, timeout=timeout)


def test_relievestatus_json_shows_master_children_and_messages(master):
    master.env["RELIEVE_USAGE_INTERVAL"] = "0.3"
    master.start(workers=2)
    ids = [post(Client(), n) for n in range(3)]
    wait_until(all_sent(ids), message="3 sent")
    children = lambda: master.status()["children"]  # noqa: E731
    wait_until(lambda: all(c["memory"] for c in children()), message="usage of both children")

    done = relievestatus(master, "--json")

    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout)
    (found,) = state["masters"]
    assert found["pid"] == master.process.pid
    assert found["host"] and found["uptime"] > 0
    (mail,) = [queue for queue in found["queues"] if queue["name"] == "mail"]
    assert mail["children"] == 2
    children = [child for child in found["children"] if child["queue"] == "mail"]
    assert [child["name"] for child in children] == ["mail0", "mail1"]
    for child in children:
        assert child["pid"] > 0 and child["state"] == "running" and child["in_flight"] == 0
        assert child["restarts"] == 0 and child["uptime"] > 0
        assert 5 * 2**20 < child["memory"] < 2**30  # bytes: a Python child is tens of MiB
        assert child["cpu_percent"] >= 0
    assert sum(child["done"] for child in children) == 3
    assert state["outcomes"]["sent"] == 3
    assert state["recent"]["minute"]["delivered"] == 3 and state["recent"]["hour"]["failed"] == 0
    assert UsageSample.objects.filter(task_name="mail0").exists()


def test_relievestatus_text_and_exit_status_without_master(master):
    master.start(workers=1)
    shown = relievestatus(master)
    assert shown.returncode == 0
    assert "mail0" in shown.stdout and "MEMORY" in shown.stdout and "messages:" in shown.stdout
    master.stop()

    down = relievestatus(master)

    assert down.returncode == 1
    (line,) = [line for line in down.stdout.splitlines() if "no relieve master answers" in line]
    assert line.count(master.socket_path) == 1, line  # the path once, then the reason
    assert "no relieve master" not in down.stderr  # said once, on stdout, not again as an error


def test_relievestatus_gives_up_on_a_master_that_does_not_answer(master):
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # accepts, never replies
    silent.bind(master.socket_path)
    silent.listen()
    try:
        down = relievestatus(master, "--timeout", "0.5")
    finally:
        silent.close()
    assert down.returncode == 1
    assert "within 0.5s" in down.stdout


def test_restart_counts_agree_with_the_restart_events(master):
    master.start(workers=1)
    child = master.status()["children"][0]
    os.kill(child["pid"], signal.SIGKILL)
    event = wait_until(lambda: TaskEvent.objects.filter(event="restart").first(), message="a restart event")
    wait_until(lambda: master.status()["children"][0]["running"], message="the child back")
    assert event.payload["restarts"] == 1
    assert master.status()["children"][0]["restarts"] == 1


def test_sighup_replaces_every_child_while_messages_keep_coming(master, smtp_sink, caplog):
    smtp_sink.stall = 0.05  # every send takes a while: a reload meets calls in flight
    master.start(workers=2)
    before = {child["name"]: child["pid"] for child in master.status()["children"]}
    web = Client()
    ids = [post(web, n) for n in range(10)]
    master.process.send_signal(signal.SIGHUP)
    n = 10

    def replaced():
        children = master.status()["children"]
        return all(c["running"] and c["pid"] != before[c["name"]] for c in children)

    while not replaced() and n < 400:
        ids.append(post(web, n))
        n += 1
    ids += [post(web, n + extra) for extra in range(10)]

    wait_until(all_sent(ids), message=f"{len(ids)} messages sent across the reload")
    assert replaced(), "every child has a new pid"
    subjects = sorted(str(message["Subject"]) for message in smtp_sink.messages)
    assert len(subjects) == len(set(subjects)) == len(ids)
    assert "not handed" not in caplog.text  # the master took every message at once
    reasons = [event.payload["reason"] for event in TaskEvent.objects.filter(event="recycle")]
    assert reasons == ["reload: SIGHUP"] * len(before)  # every child of every queue, once
    assert master.process.poll() is None


def test_reload_option_replaces_children_when_a_python_file_changes(master):
    # The fixture's start() runs no --reload: this runs its own, which the fixture still stops.
    log = open(master.log_path, "a")  # noqa: SIM115 - the process owns it
    argv = [sys.executable, "manage.py", "runrelieve", "--workers", "1", "--socket", master.socket_path]
    master.process = subprocess.Popen([*argv, "--reload"], cwd=ROOT, env=master.env, stdout=log, stderr=log)
    log.close()
    first = wait_until(_child_pid(master), message="the master up")
    touched = ROOT / "tests" / "e2e" / "tasks" / "crashing.py"
    os.utime(touched)

    wait_until(lambda: _child_pid(master)() not in (None, first), message="a new child after the change")
    wait_until(lambda: "reload done" in master.output(), message="the reload over")
    output = master.output()
    assert "crashing.py changed" in output
    # A planned replacement is no warning: each replaced child says so once, at INFO.
    assert [line for line in output.splitlines() if "WARNING relieve_app.tasks.master.children" in line] == []
    assert "INFO relieve_app.tasks.master.children: child default0 stopped to be replaced" in output


ADDED_MODULE = """
from django.dispatch import receiver
from django.tasks import task
from django.tasks.signals import task_finished, task_started


@task
def first(path):
    return path


@receiver(task_started, dispatch_uid="added-started")
@receiver(task_finished, dispatch_uid="added-finished")
def note(sender, task_result, **kwargs):
    if task_result.args and str(task_result.args[0]).endswith("signals.txt"):
        with open(task_result.args[0], "a") as file:
            file.write(f"{task_result.task.module_path} {task_result.id} {task_result.status}\\n")
"""

ADDED_TASK = """

@task
def second(path):
    return path
"""


def test_a_task_added_under_reload_is_signalled_in_the_master_as_itself(master, tmp_path):
    """The master imported the module for its first task; the second, added later, is not a stand-in."""
    log = open(master.log_path, "a")  # noqa: SIM115 - the process owns it
    argv = [sys.executable, "manage.py", "runrelieve", "--workers", "1", "--socket", master.socket_path]
    master.process = subprocess.Popen([*argv, "--reload"], cwd=ROOT, env=master.env, stdout=log, stderr=log)
    log.close()
    pid = wait_until(_child_pid(master), message="the master up")
    name = f"added_{os.getpid()}_{pid}"
    module = ROOT / "tests" / "tasks_fixtures" / f"{name}.py"
    notes = tmp_path / "signals.txt"
    lines = lambda: notes.read_text().splitlines() if notes.exists() else []  # noqa: E731
    try:
        module.write_text(ADDED_MODULE)
        pid = wait_until(
            lambda: _child_pid(master)() not in (None, pid) and _child_pid(master)(), message="reload"
        )
        added = importlib.import_module(f"tests.tasks_fixtures.{name}")
        first = added.first.enqueue(str(notes))
        wait_until(lambda: len(lines()) == 2, message="the first task's signals")

        module.write_text(ADDED_MODULE + ADDED_TASK)
        wait_until(
            lambda: _child_pid(master)() not in (None, pid), message="a reload after the task was added"
        )
        added = importlib.reload(added)
        second = added.second.enqueue(str(notes))
        wait_until(lambda: len(lines()) >= 4, message="the second task's signals")
    finally:
        for leftover in [module, *module.parent.glob(f"__pycache__/{name}.*")]:
            leftover.unlink()
    path = f"tests.tasks_fixtures.{name}"
    assert lines() == [
        f"{path}.first {first.id} RUNNING",
        f"{path}.first {first.id} SUCCESSFUL",
        f"{path}.second {second.id} RUNNING",
        f"{path}.second {second.id} SUCCESSFUL",
    ]
    assert "_missing" not in master.output()


def _child_pid(master):
    def pid():
        try:
            children = client.request("status")["children"]
        except client.ClientError:
            return None
        return children[0]["pid"] if children and children[0]["running"] else None

    return pid


def test_a_failed_message_is_summed_up_to_the_owner_by_the_master(master, smtp_sink):
    master.env["RELIEVE_FAILURE_NOTIFY"] = "site-owner@example.com"
    smtp_sink.refuse_if = lambda subject: subject == "poison"
    master.start(workers=1)

    pk = post(Client(), 7, subject="poison")

    wait_until(lambda: MailOutcome.objects.filter(pk=pk, status="failed").exists(), message="failed")
    (notice,) = smtp_sink.wait_for(1, timeout=30)
    assert notice["To"] == "site-owner@example.com"
    assert notice["Reply-To"] == "visitor7@example.org"
    assert f"(#{pk})" in notice["Subject"]
    text = notice.get_content()
    assert "visitor7@example.org" in text and "poison" in text and "SMTP 550" in text
    assert "> Hello **there**, this is message number 7." in text
    event = wait_until(lambda: TaskEvent.objects.filter(event="notify").first(), message="a notify event")
    assert event.payload == {"id": pk, "to": "site-owner@example.com", "sent": "summary"}
    assert event.outcome_id == pk


def test_sends_go_on_while_the_status_is_read_in_a_loop(master):
    """The status operation runs on the master's loop: reading it often must not slow the mail down."""
    master.start(workers=2)
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            master.status()

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        ids = [post(Client(), n) for n in range(20)]
        wait_until(all_sent(ids), message="20 sent while status is polled")
    finally:
        stop.set()
        reader.join()


def test_relievestatus_watch_refreshes_until_interrupted(master):
    master.start(workers=1)
    argv = [sys.executable, "manage.py", "relievestatus", "--socket", master.socket_path, "--watch"]
    watch = subprocess.Popen(
        [*argv, "--interval", "0.2"], cwd=ROOT, env=master.env, stdout=subprocess.PIPE, text=True
    )
    frames = []
    try:
        while len(frames) < 3:
            line = watch.stdout.readline()
            assert line, "relievestatus --watch ended by itself"
            if line.startswith("\x1b[H\x1b[2J"):  # each refresh clears the screen and starts over
                frames.append(line)
    finally:
        watch.send_signal(signal.SIGINT)
        code = watch.wait(30)
        watch.stdout.close()
    assert code == 0
    assert all("master pid" in frame for frame in frames)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_relievestatus_watch_stops_even_when_started_with_sigint_ignored(master, sig):
    """A shell's background job (``make test &``) starts with SIGINT ignored, and Python keeps it so."""
    master.start(workers=1)
    argv = [sys.executable, "manage.py", "relievestatus", "--socket", master.socket_path, "--watch"]
    ignoring = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *argv, "--interval", "0.2"]
    watch = subprocess.Popen(ignoring, cwd=ROOT, env=master.env, stdout=subprocess.PIPE, text=True)
    try:
        line = watch.stdout.readline()
        assert line.startswith("\x1b[H\x1b[2J"), line
    finally:
        watch.send_signal(sig)
        try:
            watch.communicate(timeout=30)  # reads on: a full pipe would hold the watch as well
        except subprocess.TimeoutExpired:
            watch.kill()
            watch.communicate()
            raise AssertionError(f"relievestatus --watch ignored {sig!r}") from None
    assert watch.returncode == 0


def test_the_reload_operation_replaces_the_children_like_sighup(master):
    master.start(workers=2)
    before = {child["name"]: child["pid"] for child in master.status()["children"]}
    assert client.request("reload") == {"reloading": True}
    wait_until(
        lambda: all(c["running"] and c["pid"] != before[c["name"]] for c in master.status()["children"]),
        message="both children replaced",
    )
    wait_until(lambda: not master.status()["reloading"], message="the reload over")


VERSIONED_RUNNER = """
import os

from relieve_app.tasks.runner import Runner as BaseRunner

VERSION = {version}


class Runner(BaseRunner):
    def start(self):
        with open(os.environ["VERSIONS_FILE"], "a") as file:
            file.write(f"{{VERSION}} {{os.getpid()}}\\n")
"""


@pytest.mark.parametrize("preload", ["True", "False"])
def test_a_reload_runs_the_changed_code_of_the_task_module(master, tmp_path, preload):
    """The zygote imported the task's module: a reload restarts it before the children, or the new
    children, forked from it, would run the code it had loaded."""
    name = f"versioned_{os.getpid()}_{preload.lower()}"
    module = ROOT / "tests" / "tasks_fixtures" / f"{name}.py"
    versions = tmp_path / "versions.txt"
    lines = lambda: versions.read_text().splitlines() if versions.exists() else []  # noqa: E731
    master.env.update(
        VERSIONS_FILE=str(versions),
        RELIEVE_TASK=f"tests.tasks_fixtures.{name}:Runner",
        RELIEVE_PRELOAD=preload,
    )
    try:
        module.write_text(VERSIONED_RUNNER.format(version=1))
        master.start(workers=1)
        first = wait_until(_child_pid(master), message="the child up")
        wait_until(lambda: f"1 {first}" in lines(), message="version 1 in the first child")
        started_before = len(lines())  # one line per child: each queue has one

        module.write_text(VERSIONED_RUNNER.format(version=2))
        master.process.send_signal(signal.SIGHUP)
        second = wait_until(lambda: _child_pid(master)() not in (None, first) and _child_pid(master)())
        wait_until(lambda: f"2 {second}" in lines(), message="version 2 in the new child")
        wait_until(lambda: "reload done" in master.output(), message="the reload over")
        assert [line.split()[0] for line in lines()[started_before:]] == ["2"] * started_before
    finally:
        for leftover in [module, *module.parent.glob(f"__pycache__/{name}.*")]:
            leftover.unlink()
    output = master.output()
    if preload == "True":
        assert output.count("zygote started") == 2  # at the start, and again for the reload
    else:
        assert "zygote" not in output


def signal_main_thread(pid, sig):
    """Send ``sig`` to the main thread of process ``pid`` (whose thread id is its pid): glibc's tgkill."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(pid, pid, sig) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def test_a_master_that_dies_of_a_fatal_signal_says_where(master):
    master.start(workers=1)
    # Once it is idle, and to its main thread: a signal that lands while that thread pushes a frame
    # can leave the frame unreadable to the handler ("File ???"), which is the handler's limit, not
    # what is tested here. os.kill() lets the kernel pick any thread.
    wait_until(lambda: all(child["running"] for child in master.status()["children"]), message="children up")
    time.sleep(1)
    signal_main_thread(master.process.pid, signal.SIGSEGV)
    assert master.process.wait(20) == -signal.SIGSEGV
    output = master.output()
    assert "Fatal Python error: Segmentation fault" in output
    assert "runrelieve.py" in output  # the main thread's stack, down to the command
    # Only that thread's: the others run on while the handler would read them, and once left it
    # dying of a SIGBUS of its own.
    assert "Thread 0x" not in output
