"""The peer benchmark's own parts that a wrong figure would hide behind: finding every worker
process (relieve's children run in sessions of their own), whose CPU each figure counts, and the
last line scripts read."""

import email.policy
import os
import re
import signal
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.peerbench import procs, report, trial
from bench.peerbench import sink as sink_module
from bench.peerbench.load import Post
from bench.peerbench.runner import Results
from bench.peerbench.sink import SinkProcess
from bench.peerbench.systems import OURS, SYSTEMS

LAST_LINE = re.compile(
    r"^peers best-peer=(\S+) post-p50-ratio=([\d.]+|nan) delivered-per-s-ratio=([\d.]+|nan) "
    r"rss-ratio=([\d.]+|nan) lost=(\d+) dup=(\d+)$"
)

# A parent whose child starts a session of its own and forks a grandchild: all three are "workers".
FAMILY = """
import subprocess, sys, time
child = subprocess.Popen(
    [sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"],
    start_new_session=True,
)
print("ready", flush=True)
time.sleep(60)
"""


def wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_tree_finds_descendants_in_other_sessions_and_kill_reaches_them_all():
    root = subprocess.Popen([sys.executable, "-c", FAMILY], stdout=subprocess.PIPE, text=True)
    try:
        assert root.stdout.readline().strip() == "ready"
        wait_until(lambda: len(procs.tree([root.pid])) == 3)
        pids = procs.tree([root.pid])
        rss, pss = procs.memory(pids)
        assert rss > 0 and 0 < pss <= rss
        assert procs.signal_all(pids, signal.SIGKILL) == 3
        root.wait(10)
        wait_until(lambda: not procs.tree(pids))
    finally:
        if root.poll() is None:
            root.kill()
            root.wait()


def test_machine_busy_counts_the_cpu_time_spent_meanwhile():
    before, spun = procs.machine_busy(), time.process_time()
    while time.process_time() - spun < 0.3:
        pass
    assert procs.machine_busy() - before >= 0.25  # at least this process's own work, whatever else ran


# A process that spins on its CPU for 0.3 s, then says so and waits to be killed.
SPINNER = """
import time
spun = time.process_time()
while time.process_time() - spun < 0.3:
    pass
print("spun", flush=True)
time.sleep(60)
"""


def test_cpu_seconds_reads_each_processs_own_user_and_system_time():
    spinner = subprocess.Popen([sys.executable, "-c", SPINNER], stdout=subprocess.PIPE, text=True)
    try:
        assert spinner.stdout.readline().strip() == "spun"
        spent = procs.cpu_seconds([spinner.pid, 2**22 + 1])  # the second pid exists nowhere
        assert list(spent) == [spinner.pid]
        assert 0.25 <= spent[spinner.pid] < 5
    finally:
        spinner.kill()
        spinner.wait()


def test_the_cpu_share_counts_each_process_from_the_first_sample_or_its_start(monkeypatch):
    """Web 1 idles; worker 2 spends 3 s after the first sample; worker 3 starts later and spends 1 s
    in all; worker 4 spends 2 s, then ends before the last sample: its last reading still counts."""
    readings = iter(
        [
            {1: 5.0, 2: 10.0, 4: 1.0},
            {1: 5.0, 2: 11.0, 3: 0.5, 4: 3.0},
            {1: 5.0, 2: 13.0, 3: 1.0},
        ]
    )

    now = {}
    monkeypatch.setattr(procs, "cpu_seconds", lambda pids: {pid: now[pid] for pid in pids if pid in now})
    share = trial.CpuShare()
    for reading in readings:
        now.clear()
        now.update(reading)
        share.sample([1], [2, 3, 4])
    assert share.spent("web") == 0.0
    assert share.spent("workers") == pytest.approx(3.0 + 1.0 + 2.0)


class FakeSink:
    """What ``trial._measure`` reads of a sink: each subject's arrivals, and its process's CPU."""

    def __init__(self, arrivals, spent=(0.0, 0.0)):
        self.arrivals = {subject: [at] for subject, at in arrivals.items()}
        self.spent = iter(spent)  # the sink process's CPU seconds, at each reading

    def wait_received(self, names, timeout, quiet):
        return len(names)

    def cpu_seconds(self):
        return next(self.spent)


class FakeSampler:
    """What ``trial._measure`` reads of the sampler: the CPU seconds each group spent."""

    rss = pss = processes = 0

    def __init__(self, web=0.0, workers=0.0):
        self.cpu = SimpleNamespace(spent={"web": web, "workers": workers}.get)

    def finish(self):
        pass


def test_the_systems_cpu_leaves_out_what_the_harness_spent():
    """The clients (the benchmark's process) and the SMTP sink (its own): their work is no system's."""
    # the sink's process: 0.2 s over the drain
    sink = FakeSink({"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}, spent=(5.0, 5.2))
    since = procs.machine_busy(), trial.harness_seconds(sink)
    spun = time.process_time()
    while time.process_time() - spun < 0.3:
        pass
    # Three messages queued before the drain, one POSTed during it: four delivered.
    sampler = FakeSampler(web=0.1, workers=0.04)
    found = trial._measure(sink, sampler, ["a", "b", "c"], [Post("d", 0.0, 0.01, 202)], 10, since)
    # 0.3 s of this process's CPU over 4 messages: at least 75 ms each in the machine's; none of it,
    # nor the sink's 0.2 s, in the system's
    assert found["cpu_ms"] >= 70
    assert found["cpu_ms"] - found["system_cpu_ms"] >= 124
    # The system's share, split: 100 ms of web and 40 of workers over 4 messages; the rest is what is left.
    assert (found["web_cpu_ms"], found["workers_cpu_ms"]) == pytest.approx((25.0, 10.0))
    assert found["rest_cpu_ms"] == pytest.approx(found["system_cpu_ms"] - 35.0)
    # The one POST made the 100 ms of web: a message with its POST is the rest of the system's and that.
    assert found["post_cpu_ms"] == pytest.approx(100.0)
    assert found["message_cpu_ms"] == pytest.approx(found["system_cpu_ms"] - 25.0 + 100.0)


def test_the_sink_runs_in_a_process_of_its_own_and_tells_each_arrival():
    """A real SMTP conversation: the subject and its time come back over the pipe, the stall holds
    the answer, and the sink's CPU is its process's, not this one's."""
    with SinkProcess() as sink:
        assert sink.pid != os.getpid()
        before = time.monotonic()
        send(sink, "pb one 1-0")
        assert sink.wait_received(["pb one 1-0"], timeout=10) == 1
        (arrived,) = sink.arrivals["pb one 1-0"]
        assert before <= arrived <= time.monotonic()

        sink.stall = 0.3
        started = time.monotonic()
        send(sink, "pb one 1-1")
        assert time.monotonic() - started >= 0.3
        assert sink.wait_received(["pb one 1-0", "pb one 1-1"], timeout=10) == 2
        sink.wait_for(2, timeout=10)
        with pytest.raises(TimeoutError, match="received 2 of 3"):
            sink.wait_for(3, timeout=0.2)

        sink.clear()
        assert sink.received(["pb one 1-0", "pb one 1-1"]) == 0
        assert sink.cpu_seconds() > 0
        process = sink._process
    assert process.poll() is not None  # stopped with the block


@pytest.mark.parametrize(
    "subject",
    ["pb plain 1-0", "pb ünïcödé 1-1 ✓", "pb long " + " ".join(f"word{n}" for n in range(40))],
    ids=["ascii", "encoded", "folded"],
)
def test_the_sink_reads_a_subject_as_sent_unfolded_and_decoded(subject):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.org", subject
    message.set_content("Subject: not this one\n")
    sent = message.as_bytes(policy=email.policy.SMTP)
    assert sink_module._subject(sent) == subject


def send(sink, subject):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.org", subject
    message.set_content("body")
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
        client.send_message(message)


def runs(post_p50, per_s, rss):
    flood = {"post_p50": post_p50, "post_p99": post_p50, "per_s": per_s, "rss": rss * report.MiB}
    flood.update(pss=rss * report.MiB, processes=5, accepted=10, delivered=10, cpu_ms=5.0, system_cpu_ms=4.0)
    flood.update(web_cpu_ms=1.5, workers_cpu_ms=2.0, rest_cpu_ms=0.5, post_cpu_ms=6.0, message_cpu_ms=8.5)
    paced = {"sink_p50": 0.01, "sink_p99": 0.02, "accepted": 10, "delivered": 10}
    return {"flood": [flood], "paced": [paced]}


def test_last_line_compares_ours_with_the_best_peer_on_each_figure():
    results = Results()
    scenario = ("postgres", 0.0)
    results.trials[(OURS.name, *scenario)] = runs(post_p50=0.020, per_s=300, rss=200)
    results.trials[("celery-reliable", *scenario)] = runs(post_p50=0.040, per_s=100, rss=400)
    results.trials[("django-post-office", *scenario)] = runs(post_p50=0.010, per_s=150, rss=250)
    # Never "best": a variant of ours, and the view's send for memory (it has no worker processes).
    results.trials[("relieve-conn-max-age-0", *scenario)] = runs(post_p50=0.001, per_s=9000, rss=1)
    results.trials[("send_mail-in-view", *scenario)] = runs(post_p50=0.500, per_s=20, rss=0)
    results.kills[OURS.name] = {"lost": 0, "dup": 3}
    _text, rows = report.table(scenario, results)
    line = report.last_line(rows, results)
    match = LAST_LINE.match(line)
    assert match, line
    best, post, rate, rss, lost, dup = match.groups()
    assert best == "django-post-office"  # the peer that delivers most per second
    assert float(post) == pytest.approx(2.0)  # ours 20 ms / post-office's 10 ms
    assert float(rate) == pytest.approx(2.0)  # ours 300/s / post-office's 150/s
    assert float(rss) == pytest.approx(0.8)  # ours 200 MiB / post-office's 250 MiB
    assert (lost, dup) == ("0", "3")


def test_every_system_names_a_hand_over_or_is_ours():
    for system in SYSTEMS.values():
        assert system.enqueue or system.path == OURS.path, system.name


@pytest.mark.parametrize(
    ("system", "engine"),
    [("relieve", "relieve_app.sqlite3"), ("django-tasks-db", "django.db.backends.sqlite3")],
)
def test_on_sqlite_ours_runs_its_engine_and_a_peer_djangos(system, engine, tmp_path):
    """relieve_app.sqlite3 is part of what is measured of ours; a peer runs what its users would."""
    code = (
        "import os\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'bench.peerbench.settings'\n"
        "from django.conf import settings\n"
        "print(settings.DATABASES['default']['ENGINE'])\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PEERBENCH_SYSTEM": system,
        "DATABASE_URL": f"sqlite:///{tmp_path}/b.sqlite3",
    }
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == engine


def test_the_memory_sampler_keeps_each_peak_of_its_own(monkeypatch):
    """A forking system's RSS peaks when most processes exist; its PSS may peak at another sample,
    when one process holds the most of its own. Each figure is its own peak."""
    samples = iter([(100, 40, 2), (300, 60, 5), (200, 90, 3), (150, 50, 2)])  # rss, pss, processes
    memory = {}

    class Stack:
        def worker_pids(self):
            rss, pss, processes = next(samples)
            pids = list(range(processes))
            memory[tuple(pids)] = rss, pss
            return pids

    monkeypatch.setattr(procs, "memory", lambda pids: memory[tuple(pids)])
    sampler = trial.Sampler(Stack())
    for _ in range(4):
        sampler.sample()
    assert (sampler.rss, sampler.pss, sampler.processes) == (300, 90, 5)


def test_the_request_clock_tells_a_views_cpu_from_its_waiting(tmp_path, monkeypatch, rf):
    """Run for real: a view that sleeps waits, a view that computes spends CPU; both land in the file
    of their phase, and ``summary`` reads back the medians per folder."""
    from bench.peerbench.request_clock import RequestClock, summary

    monkeypatch.setenv("PEERBENCH_REQUEST_CLOCK", str(tmp_path / "ours sqlite"))

    def sleeps(request):
        time.sleep(0.05)
        return "slept"

    def computes(request):
        until = time.thread_time() + 0.05
        while time.thread_time() < until:
            pass
        return "computed"

    assert RequestClock(sleeps)(rf.post("/", {"subject": "pb during 1-0"})) == "slept"
    assert RequestClock(computes)(rf.post("/", {"subject": "pb paced 1-1"})) == "computed"
    assert RequestClock(sleeps)(rf.get("/")) == "slept"  # not a POST: not timed

    (slept,) = summary(tmp_path, phase="during").values()
    assert slept["posts"] == 1
    assert slept["wall"] >= 0.05 and slept["other"] >= 0.04 and slept["cpu"] < 0.02
    computed = summary(tmp_path, phase="paced")["ours sqlite"]
    assert computed["cpu"] >= 0.05 and computed["other"] < 0.02
    assert slept["wall"] == pytest.approx(slept["cpu"] + slept["runq"] + slept["other"], abs=1e-5)
    assert slept["blocked"] >= 1  # the sleep gave the core up


def test_the_report_shows_the_request_clock_when_asked():
    results = Results(
        clocks={
            "relieve sqlite": {
                "posts": 3,
                "wall": 0.006,
                "cpu": 0.002,
                "runq": 0.0035,
                "other": 0.0005,
                "preempted": 2,
                "blocked": 1,
            }
        }
    )
    table = report.clock_table(results)
    assert "| relieve sqlite | 3 | 6.00 | 2.00 | 3.50 | 0.50 | 2 | 1 |" in table


def test_the_report_says_where_each_systems_cpu_went():
    results = Results()
    results.trials[(OURS.name, "sqlite", 0.0)] = runs(post_p50=0.020, per_s=300, rss=200)
    results.trials[("send_mail-in-view", "sqlite", 0.0)] = runs(post_p50=0.040, per_s=90, rss=0)
    table = report.cpu_table(results)
    assert f"| {OURS.label} | sqlite, 0 ms | 4.0 | 1.5 | 2.0 | 0.5 | 6.0 | 8.5 |" in table
    view = SYSTEMS["send_mail-in-view"].label
    assert f"| {view} | sqlite, 0 ms | 4.0 | 1.5 | 2.0 | 0.5 | 6.0 | 8.5 (1.00) |" in table


def test_a_drain_counts_the_posts_answered_while_its_messages_arrived():
    """The POSTs a drain shared the machine with: started and answered between its first and last
    arrival; one answered late, one begun early and one refused are not among them."""
    posts = [
        Post("p1", 1.1, 0.5, 202),
        Post("p2", 2.0, 0.9, 202),
        Post("late", 2.5, 0.6, 202),
        Post("early", 0.9, 0.2, 202),
        Post("refused", 1.5, 0.1, 400),
    ]
    sink = FakeSink({"a": 1.0, "b": 2.0, "c": 3.0})
    since = procs.machine_busy(), trial.harness_seconds(sink)

    found = trial._measure(sink, FakeSampler(), ["a", "b", "c"], posts, 10, since)

    assert found["in_span"] == 2
