"""The share of the time a queue's children wanted a core, read from Linux's per-thread counters."""

import os
import threading
import time

import pytest

from relieve_app.tasks.master import demand
from relieve_app.tasks.master.demand import Demand, Headroom, Idle, cpu_wanted, idle_and_total


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def threads_of(counters):
    """A reader of per-thread counters from one count a process: each process one thread."""
    return lambda pid: None if pid not in counters else {"main": counters[pid]}


def test_the_share_is_what_the_processes_wanted_over_the_time_between_two_looks():
    clock, counters = Clock(), {1: 0, 2: 0}
    looks = Demand(clock=clock, read=threads_of(counters))
    assert looks.share([1, 2]) is None  # a first look
    clock.now += 1.0
    counters[1] += 900_000_000  # ran or waited for a core 0.9 s of the second
    counters[2] += 100_000_000
    assert looks.share([1, 2]) == pytest.approx(0.5)
    clock.now += 1.0
    counters[1] += 100_000_000
    assert looks.share([1, 2]) == pytest.approx(0.05)


def test_a_process_read_for_the_first_time_or_unreadable_counts_only_from_its_next_look():
    clock, counters = Clock(), {1: 0}
    looks = Demand(clock=clock, read=threads_of(counters))
    looks.share([1])
    clock.now += 1.0
    counters[1] += 200_000_000
    counters[3] = 5_000_000_000  # new since the last look: its total so far is no share
    assert looks.share([1, 3]) == pytest.approx(0.2)
    clock.now += 1.0
    assert looks.share([4]) is None  # cannot be read: nothing to tell
    looks.share([1])
    looks.forget()
    assert looks.share([1]) is None


def test_the_machine_idle_share_is_its_idle_ticks_over_all_its_ticks_between_two_looks():
    ticks = [(100, 1000)]
    idle = Idle(read=lambda: ticks[-1])
    assert idle.share() is None
    ticks.append((130, 1100))
    assert idle.share() == pytest.approx(0.3)
    ticks.append((130, 1100))  # no tick between the two looks: nothing to tell
    assert idle.share() is None


class Fixed:
    """A share that says what it is told."""

    def __init__(self, value):
        self.value = value

    def share(self, *pids):
        return self.value

    def forget(self):
        pass


@pytest.mark.parametrize(
    ("wanted", "idle", "more"),
    [
        (0.1, 0.6, 8),
        (0.3, 0.25, 1),
        (0.001, 0.6, 40),
        (0.7, 0.6, 0),
        (0.1, 0.05, 0),
        (None, 0.6, None),
        (0.1, None, None),
    ],
    ids=[
        "children-wait-cores-idle",
        "a-little-room",
        "children-barely-want-a-core",
        "children-compute",
        "cores-busy",
        "children-unread",
        "cores-unread",
    ],
)
def test_more_children_only_when_they_wait_and_as_many_as_the_spare_cores_feed(wanted, idle, more):
    clock = Clock()
    headroom = Headroom(0.5, 0.2, span=0.3, children=Fixed(wanted), machine=Fixed(idle), clock=clock, cores=2)
    # 0.1 wanted, 0.6 idle: (0.6 - 0.2) of 2 cores is 0.8 core, 8 children wanting 0.1 each;
    # each child is taken to want 0.02 at least: 0.8 / 0.02 = 40
    assert headroom.for_more([1])[0] == more


def test_after_a_first_look_the_next_span_decides():
    clock = Clock()
    headroom = Headroom(0.5, 0.2, span=0.3, children=Fixed(0.1), machine=Fixed(0.6), clock=clock, cores=2)
    assert headroom.for_more([1])[0] == 8  # these shares need no first look
    clock.now += 0.1
    assert headroom.for_more([1]) == (None, None, None)  # within the span: too few ticks to tell
    clock.now += 0.25
    assert headroom.for_more([1])[0] == 8
    headroom.forget()
    clock.now += 0.01
    assert headroom.for_more([1])[0] == 8  # forgotten: a first look again


@pytest.mark.skipif(not demand.MEASURABLE, reason="/proc/<pid>/task is Linux's")
def test_every_thread_of_a_process_is_counted_while_it_runs():
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            pass

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        before = cpu_wanted(os.getpid())
        time.sleep(0.3)  # this thread sleeps: what is counted meanwhile is the other's
        after = cpu_wanted(os.getpid())
    finally:
        stop.set()
        thread.join()
    assert len(after) >= 2  # this thread and the spinning one, each by its id
    assert sum(after.values()) - sum(before.values()) >= 200_000_000  # the spinning one's 0.3 s
    assert cpu_wanted(2**22 + 1) is None  # no such process


@pytest.mark.skipif(not demand.MEASURABLE, reason="/proc/stat is Linux's")
def test_the_machine_ticks_are_read():
    idle, total = idle_and_total()
    assert 0 <= idle <= total


def test_a_thread_that_ended_between_two_looks_takes_nothing_off_the_others_and_a_new_one_counts():
    clock = Clock()
    threads = {1: {"a": 500_000_000, "b": 100_000_000}}
    looks = Demand(clock=clock, read=threads.get)
    looks.share([1])
    clock.now += 1.0
    threads[1] = {"b": 300_000_000, "c": 100_000_000}  # "a" ended, "c" started
    assert looks.share([1]) == pytest.approx(0.3)  # b's 0.2 s and c's 0.1 s
