"""Run every system through the same trials, one after the other, and print the report."""

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.peerbench import report, request_clock, trial
from bench.peerbench.profile import Profiler, summary
from bench.peerbench.sink import SinkProcess
from bench.peerbench.stack import Database, Stack, StackError
from bench.peerbench.systems import DEFAULT, OURS, SYSTEMS

DELAYS = (0.0, 0.05)  # the sink answers at once, then after 50 ms


@dataclass
class Options:
    systems: list
    databases: list
    messages: int = 2000
    slow_messages: int = 300
    during: int = 200  # posted while the backlog drains, for POST latency
    during_rate: float = None  # those POSTs a second; None: as fast as the clients are answered
    paced: int = 100
    rate: float = 10.0
    kill_messages: int = 200
    kill_wait: float = 75.0
    repeats: int = 3
    warmup: int = 30
    workers: int = 4
    web_workers: int = 4
    clients: int = 4
    sqlite_delays: tuple = (0.0,)
    sqlite_repeats: int = 0  # 0: as many as --repeats
    redis: str = "redis://127.0.0.1:6379/7"
    pg_name: str = "relieve_bench"
    keep: bool = False
    profile: tuple = ()  # systems to run py-spy on during their first drain
    request_clock: bool = False  # time each POST inside Django (request_clock.py)


@dataclass
class Results:
    trials: dict = field(
        default_factory=dict
    )  # (system, database, delay) -> {"flood": [...], "paced": [...]}
    kills: dict = field(default_factory=dict)  # system -> kill result
    profiles: dict = field(default_factory=dict)  # system -> py-spy summary
    clocks: dict = field(default_factory=dict)  # "system kind" -> request_clock.summary's medians
    errors: dict = field(default_factory=dict)  # (system, database) -> message
    seconds: float = 0.0


class Round:
    """Every system on one kind of database, set up side by side, measured in turns.

    Each repeat runs every system once before the next repeat begins, so a change in the load of
    the machine falls on all of them alike; only the system being measured has its workers running.
    """

    def __init__(self, kind, options, sink, folder, results, log):
        self.kind = kind
        self.options = options
        self.sink = sink
        self.folder = folder
        self.results = results
        self.log = log
        self.stacks = []

    def run(self):
        try:
            self.set_up()
            delays = DELAYS if self.kind == "postgres" else self.options.sqlite_delays
            repeats = self.options.repeats if self.kind == "postgres" else self.options.sqlite_repeats
            for delay in delays:
                for repeat in range(repeats or self.options.repeats):
                    for stack in list(self.stacks):
                        self.guarded(stack, self.measure, stack, delay, repeat)
            if self.kind == self.options.databases[0]:
                for stack in [stack for stack in self.stacks if stack.system.has_workers]:
                    self.guarded(stack, self.kill, stack)
        finally:
            self.sink.stall = 0.0
            for stack in self.stacks:
                stack.stop()

    def set_up(self):
        systems = [SYSTEMS[name] for name in self.options.systems if self.kind in SYSTEMS[name].databases]
        for index, system in enumerate(systems):
            database = Database(self.kind, self.folder / system.name, f"{self.options.pg_name}_{index}")
            stack = Stack(system, database, self.sink, self.folder, self.options)
            self.stacks.append(stack)
            self.log(f"{system.name} on {self.kind}: setting up")
            self.guarded(stack, self.warm_up, stack)

    def warm_up(self, stack):
        stack.start()
        self.sink.stall = 0.0
        options = self.options
        warm = trial.paced(stack, self.sink, options.warmup, options.rate, options.clients, timeout=90)
        stack.stop_workers()
        if warm["delivered"] < warm["accepted"] or not warm["accepted"]:
            raise StackError(f"warm-up delivered {warm['delivered']} of {warm['accepted']} accepted")

    def measure(self, stack, delay, repeat):
        options, system = self.options, stack.system
        self.sink.stall = delay
        count = options.messages if not delay else options.slow_messages
        first = not repeat and not delay and self.kind == options.databases[0]
        if first and system.name in options.profile:  # an extra drain: the profiler slows what it watches
            load(stack, self.sink, count, options, profiler(self.folder, self.results, system.name))
        flood = load(stack, self.sink, count, options)
        paced = trial.paced(stack, self.sink, options.paced, options.rate, options.clients, timeout=120)
        stack.stop_workers()
        runs = self.results.trials.setdefault((system.name, self.kind, delay), {"flood": [], "paced": []})
        runs["flood"].append(flood)
        runs["paced"].append(paced)
        where = f"{system.name} {self.kind} smtp+{delay * 1000:.0f}ms #{repeat + 1}"
        self.log(f"  {where}: {report.brief(flood, paced)}")

    def kill(self, stack):
        """Workers up and answering first (a few paced messages), then the kill test at 50 ms."""
        options = self.options
        self.sink.stall = 0.05
        stack.start_workers()
        trial.paced(stack, self.sink, 10, options.rate, options.clients, timeout=60)
        killed = trial.kill(stack, self.sink, options.kill_messages, options.clients, options.kill_wait)
        stack.stop_workers()
        self.results.kills[stack.system.name] = killed
        self.log(f"  {stack.system.name} kill: {report.brief_kill(killed)}")

    def guarded(self, stack, step, *args):
        """A system that fails is reported and left out of the rest of the round; the others go on."""
        try:
            step(*args)
        except (StackError, OSError) as exc:
            name = stack.system.name
            self.results.errors[(name, self.kind)] = f"{exc}\n{stack.worker_log()}"
            self.log(f"  {name} {self.kind}: FAILED {str(exc)[:300]}")
            if stack in self.stacks:
                self.stacks.remove(stack)
            stack.stop()


def load(stack, sink, count, options, watch=contextlib.nullcontext):
    """The drain of a backlog of `count`, or for a system without workers a flood of as many POSTs."""
    timeout = max(120, count / 4)
    if stack.system.has_workers:
        return trial.drain(
            stack, sink, count, options.during, options.clients, timeout, watch, options.during_rate
        )
    return trial.flood(stack, sink, count, options.clients, timeout)


def profiler(folder, results, name):
    """A py-spy run around the drain of this system's first backlog; its summary lands in results."""

    @contextlib.contextmanager
    def watch(stack):
        workers, web = folder / f"{name}.workers.pyspy.txt", folder / f"{name}.web.pyspy.txt"
        with Profiler(stack.workers[0].pid, workers), Profiler(stack.web.pid, web):
            yield
        for part, out in (("worker processes", workers), ("gunicorn", web)):
            results.profiles[f"{name}, {part}"] = summary(out) if out.exists() else "py-spy wrote nothing"

    return watch


def run(options, log=print):
    folder = Path(tempfile.mkdtemp(prefix="peerbench-"))
    results = Results()
    started = time.monotonic()
    with SinkProcess() as sink:
        for kind in options.databases:
            Round(kind, options, sink, folder, results, log).run()
    if options.request_clock:
        results.clocks = request_clock.summary(folder / "request-clock")
    results.seconds = time.monotonic() - started
    if options.keep or results.errors:
        log(f"logs kept in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return results


def parse(argv):
    parser = argparse.ArgumentParser(prog="bench/peers.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a few hundred messages, one repeat: for development"
    )
    parser.add_argument(
        "--systems", default=",".join(DEFAULT), help="comma-separated; ours is always included"
    )
    parser.add_argument("--databases", default="postgres,sqlite", help="postgres, sqlite or both")
    parser.add_argument("--messages", type=int, help="backlog drained with the sink answering at once (2000)")
    parser.add_argument("--slow-messages", dest="slow_messages", type=int, help="backlog at 50 ms (300)")
    parser.add_argument("--repeats", type=int, help="trials per figure, medians reported (3)")
    parser.add_argument(
        "--during-rate",
        dest="during_rate",
        type=float,
        help="POSTs a second while a backlog drains, the same for every system (as fast as answered)",
    )
    parser.add_argument(
        "--kill-wait", dest="kill_wait", type=float, help="seconds to wait after the kill (75)"
    )
    parser.add_argument(
        "--sqlite-repeats", dest="sqlite_repeats", type=int, help="repeats on SQLite (as --repeats)"
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/7", help="a Redis database of our own")
    parser.add_argument("--pg-name", dest="pg_name", default="relieve_bench", help="created and dropped")
    parser.add_argument("--keep", action="store_true", help="keep the folder with the logs")
    parser.add_argument("--profile", default="", help="comma-separated systems to run py-spy on")
    parser.add_argument(
        "--request-clock",
        dest="request_clock",
        action="store_true",
        help="where each POST's time goes inside Django: CPU, waiting for a core, waiting on the rest",
    )
    args = parser.parse_args(argv)
    names = [name for name in args.systems.split(",") if name]
    unknown = sorted(set(names) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown systems {unknown}; known: {', '.join(SYSTEMS)}")
    names = [OURS.name, *(name for name in names if name != OURS.name)]
    options = Options(
        systems=names, databases=args.databases.split(","), redis=args.redis, pg_name=args.pg_name
    )
    options.keep = args.keep
    options.request_clock = args.request_clock
    options.profile = tuple(name for name in args.profile.split(",") if name)
    if args.quick:
        options.messages, options.slow_messages, options.paced, options.repeats = 300, 100, 40, 1
        options.during = 100
        options.kill_wait, options.warmup = 30.0, 20
    for name in ("messages", "slow_messages", "repeats", "sqlite_repeats", "kill_wait", "during_rate"):
        if getattr(args, name) is not None:
            setattr(options, name, getattr(args, name))
    return options


def main(argv=None):
    options = parse(argv)
    results = run(options, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(report.render(options, results))
    return 1 if OURS.name not in {name for name, _kind, _delay in results.trials} else 0
