"""One measurement on a running stack; every count comes from the sink's receipts, never the peer.

- `drain`: a backlog queued while the workers are stopped, then drained, with more POSTs meanwhile:
  delivered per second, POST latency while the queue drains, peak memory of the workers, and
  the machine's CPU time per message (all processes: web, workers, database, broker, sink), and
  the same less the harness's (this process, whose clients stand for the browsers, and the SMTP
  sink's process, for the mail server): the system's, split into its web workers', its worker
  processes' and the rest (database server, broker, the kernel's own threads). Most of a drain's
  messages were queued before it (``fill``), not POSTed: a message's CPU with its POST included
  adds the web's CPU a POST of the drain to the rest of the system's a message, as a flood of POSTs
  counts it.
  (`flood` for a system without workers: the POSTs themselves deliver.)
- `paced`: POST at a steady rate every system keeps up with: time from POST to arrival at the sink.
- `kill`: POST `count`, SIGKILL every worker process at once, start the workers again, and count
  delivered, lost and duplicated messages.
"""

import contextlib
import itertools
import statistics
import threading
import time

from bench.peerbench import procs
from bench.peerbench.load import post_all

_serial = itertools.count()


def subjects(tag, count):
    run = next(_serial)
    return [f"pb {tag} {run}-{n}" for n in range(count)]


def percentile(values, share):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class CpuShare:
    """CPU seconds the web's processes and the worker processes spent since the first ``sample()``.

    Each process counts from the first sample (or from its start, when it started later) to the
    last sample that saw it: one that ends between two samples loses at most the CPU of that
    interval, so the sampler reads these with the memory, every half second.
    """

    GROUPS = ("web", "workers")

    def __init__(self):
        self._first = None  # (group, pid) -> seconds at the first sample
        self._last = {}  # (group, pid) -> seconds at the last sample that saw it

    def sample(self, web_pids, worker_pids):
        seen = {}
        for group, pids in zip(self.GROUPS, (web_pids, worker_pids), strict=True):
            seen.update(((group, pid), spent) for pid, spent in procs.cpu_seconds(pids).items())
        if self._first is None:
            self._first = dict(seen)
        self._last.update(seen)

    def spent(self, group):
        return sum(last - self._first.get(key, 0.0) for key, last in self._last.items() if key[0] == group)


class Sampler(threading.Thread):
    """The largest total RSS and the largest total PSS of the worker processes seen while it runs,
    each its own peak (a forking system's RSS peaks when most processes exist, its PSS may peak when
    one holds the most of its own), and the most processes seen; once ``count_cpu()`` is called,
    the CPU of the web's and the workers' processes too (``CpuShare``)."""

    def __init__(self, stack, every=0.5):
        super().__init__(name="peerbench-sampler", daemon=True)
        self.stack = stack
        self.every = every
        self.rss = self.pss = 0
        self.processes = 0
        self.cpu = None
        self._done = threading.Event()

    def count_cpu(self):
        """From now on: the first sample is taken here, before the sampler's thread sees it."""
        cpu = CpuShare()
        cpu.sample(self.stack.web_pids(), self.stack.worker_pids())
        self.cpu = cpu

    def run(self):
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.every)

    def sample(self):
        pids = self.stack.worker_pids()  # one walk of /proc serves the memory and the CPU
        rss, pss = procs.memory(pids)
        self.rss, self.pss = max(self.rss, rss), max(self.pss, pss)
        self.processes = max(self.processes, len(pids))
        if self.cpu is not None:
            self.cpu.sample(self.stack.web_pids(), pids)

    def finish(self):
        self._done.set()
        self.join()
        self.sample()


def harness_seconds(sink):
    """CPU seconds of what stands for the browsers and the mail server: every thread of this process
    (the clients, the sampler, the sink's reader) and the sink's process."""
    return time.process_time() + sink.cpu_seconds()


def _accepted(posts):
    return [post for post in posts if post.status == 202]


def drain(stack, sink, backlog, during, clients, timeout, watch=contextlib.nullcontext, rate=None):
    """Queue `backlog` messages with the workers stopped, start them, and POST `during` more meanwhile,
    as fast as answered or `rate` a second.

    Delivered per second counts from the first arrival to the last, so a worker's start-up is not
    in it; POST latency is that of the messages posted while the backlog drains. As fast as
    answered, a system whose POSTs are answered sooner drains its backlog beside more of them:
    ``in_span`` counts those answered within the drain.
    """
    sink.clear()
    stack.stop_workers()
    names = stack.fill(backlog, f"pb backlog {next(_serial)}")
    stack.start_workers()
    sampler = Sampler(stack)
    sampler.start()
    with watch(stack):  # a profiler, when asked for
        sink.wait_received(names, timeout=60, at_least=1)  # the drain has begun
        since = procs.machine_busy(), harness_seconds(sink)
        sampler.count_cpu()
        posts = post_all(stack.web_port, stack.system.path, subjects("during", during), clients, rate)
        return _measure(sink, sampler, names, posts, timeout, since)


def flood(stack, sink, count, clients, timeout):
    """No worker to stop (the send is in the view): POST as fast as answered, the view delivering."""
    sink.clear()
    sampler = Sampler(stack)
    sampler.start()
    since = procs.machine_busy(), harness_seconds(sink)
    sampler.count_cpu()
    posts = post_all(stack.web_port, stack.system.path, subjects("flood", count), clients)
    return _measure(sink, sampler, [post.subject for post in _accepted(posts)], posts, timeout, since)


def _measure(sink, sampler, counted, posts, timeout, since):
    """Wait for every message; the rate over `counted` (first to last arrival), the latency of `posts`,
    and the CPU time per message since `since` (``procs.machine_busy()`` and ``harness_seconds()``
    when the drain began): the machine's, and the system's (the machine's less the harness's),
    split into the web's, the workers' (as the sampler counted them) and the rest; and a message's
    with its POST: the web's CPU a POST of `posts`, plus all but the web's a message delivered."""
    known = set(counted)
    names = counted + [post.subject for post in _accepted(posts) if post.subject not in known]
    delivered = sink.wait_received(names, timeout=timeout, quiet=30)
    machine_since, own_since = since
    cpu_seconds = procs.machine_busy() - machine_since
    harness = harness_seconds(sink) - own_since
    sampler.finish()
    arrivals = sorted(sink.arrivals[name][0] for name in counted if sink.arrivals.get(name))
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    in_span = sum(  # POSTs answered while the counted messages arrived
        1
        for post in _accepted(posts)
        if arrivals and arrivals[0] <= post.started and post.started + post.seconds <= arrivals[-1]
    )
    seconds = [post.seconds for post in _accepted(posts)]
    system_seconds = cpu_seconds - harness
    web, workers = (sampler.cpu.spent(group) for group in CpuShare.GROUPS)

    def per_message(spent):
        return spent * 1000 / delivered if delivered else float("nan")

    a_post = web * 1000 / len(posts) if posts else float("nan")

    return {
        "posted": len(posts),
        "in_span": in_span,
        "accepted": len(names),
        "delivered": delivered,
        "post_p50": percentile(seconds, 0.5),
        "post_p99": percentile(seconds, 0.99),
        "per_s": (len(arrivals) - 1) / span if len(arrivals) > 1 else 0.0,
        "cpu_ms": per_message(cpu_seconds),
        "system_cpu_ms": per_message(system_seconds),
        "web_cpu_ms": per_message(web),
        "workers_cpu_ms": per_message(workers),
        "rest_cpu_ms": per_message(system_seconds - web - workers),
        "post_cpu_ms": a_post,
        "message_cpu_ms": per_message(system_seconds - web) + a_post,
        "rss": sampler.rss,
        "pss": sampler.pss,
        "processes": sampler.processes,
    }


def paced(stack, sink, count, rate, clients, timeout):
    sink.clear()
    posts = post_all(stack.web_port, stack.system.path, subjects("paced", count), clients, rate=rate)
    accepted = _accepted(posts)
    delivered = sink.wait_received([post.subject for post in accepted], timeout=timeout, quiet=30)
    to_sink = [
        sink.arrivals[post.subject][0] - post.started for post in accepted if sink.arrivals.get(post.subject)
    ]
    return {
        "accepted": len(accepted),
        "delivered": delivered,
        "sink_p50": percentile(to_sink, 0.5),
        "sink_p99": percentile(to_sink, 0.99),
    }


def kill(stack, sink, count, clients, wait):
    """All accepted messages should arrive once: lost are those that never do within `wait` seconds."""
    sink.clear()
    posts = post_all(stack.web_port, stack.system.path, subjects("kill", count), clients)
    names = [post.subject for post in _accepted(posts)]
    before = sink.received(names)
    killed = stack.kill_workers()
    stack.start_workers()
    restarted = time.monotonic()
    delivered = sink.wait_received(names, timeout=wait)
    return {
        "posted": len(posts),
        "accepted": len(names),
        "delivered_before_kill": before,
        "killed": killed,
        "delivered": delivered,
        "lost": len(names) - delivered,
        "dup": sum(max(len(sink.arrivals.get(name, ())) - 1, 0) for name in names),
        "recovered_in": time.monotonic() - restarted,
    }


def median(trials, key):
    values = [trial[key] for trial in trials]
    return statistics.median(values) if values else float("nan")
