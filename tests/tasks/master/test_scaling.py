"""When a queue given a range of children grows, and which of its children it stops."""

import asyncio
import time
from types import SimpleNamespace

from relieve_app.tasks.master.lanes import Lane
from relieve_app.tasks.master.scaling import GROW_FROM, Scaling, to_add, to_stop


class Child:
    """What a lane and its pool read of a child: its name, whether it runs, its calls in flight."""

    def __init__(self, name, running=True, in_flight=0):
        self.name, self.running, self.in_flight = name, running, in_flight

    def on(self, event, fn):
        return self

    def off(self, event, fn):
        return self


def lane_of(count, least=1, most=8, average=0.05):
    lane = Lane("mail", least, most=most)
    for n in range(count):
        lane.pool.add(Child(f"mail{n}"))  # running: the pool puts it in rotation
    if average is not None:
        lane.average = average
    return lane


def hold_every_child(lane):
    for child in lane.pool.strategy.tasks:
        lane.busy[child.name] = [object()]


def wait(lane, count):
    for n in range(count):
        lane.push(1000 + n, 0, float(n))


def test_a_queue_whose_children_are_all_busy_could_use_a_child_for_each_task_that_waits():
    lane = lane_of(2)
    hold_every_child(lane)
    wait(lane, 1)
    assert to_add(lane) == 1
    wait(lane, 4)
    assert to_add(lane) == 5


def test_a_queue_grows_no_further_than_its_most():
    lane = lane_of(7, most=8)
    hold_every_child(lane)
    wait(lane, 20)
    assert to_add(lane) == 1
    lane.pool.add(Child("mail7"))
    hold_every_child(lane)
    assert to_add(lane) == 0


def test_no_growth_while_a_child_is_free_nothing_waits_or_the_queue_is_paused():
    lane = lane_of(2)
    wait(lane, 5)
    assert to_add(lane) == 0  # free children take them
    hold_every_child(lane)
    assert to_add(lane) == 5
    lane.paused = True
    assert to_add(lane) == 0
    lane.paused = False
    lane._heap.clear()
    assert to_add(lane) == 0


def test_short_tasks_do_not_grow_a_queue():
    lane = lane_of(2, average=GROW_FROM / 2)
    hold_every_child(lane)
    lane.ran(lane.pool.strategy.tasks[0], GROW_FROM / 2)
    wait(lane, 10)
    for child in lane.pool.strategy.tasks:  # each holds as many as it may ahead of short tasks
        lane.busy[child.name] = [object()] * lane.depth()
    assert to_add(lane) == 0


def test_before_any_task_ended_a_task_running_long_enough_grows_the_queue():
    lane = lane_of(1, average=None)
    child = lane.pool.strategy.tasks[0]
    lane.busy[child.name] = [1]
    wait(lane, 3)
    lane.started(child, 1)
    assert to_add(lane) == 0  # just started: how long it takes is not known yet
    lane._started[child.name] = time.monotonic() - 2 * GROW_FROM
    assert to_add(lane) == 3


def test_children_still_starting_count_for_the_tasks_that_wait():
    lane = lane_of(2)
    hold_every_child(lane)
    lane.pool.add(Child("mail2", running=False))
    wait(lane, 2)
    assert to_add(lane) == 1  # two wait, one child is on its way


def test_children_idle_long_enough_stop_the_longest_idle_first_down_to_the_least():
    lane = lane_of(4, least=2)
    now = time.monotonic()
    for n, idle in enumerate([40, 10, 50, 30]):
        lane.idle_since[f"mail{n}"] = now - idle
    assert [child.name for child in to_stop(lane, 20, now)] == ["mail2", "mail0"]
    assert [child.name for child in to_stop(lane, 45, now)] == ["mail2"]


def test_a_child_holding_an_id_or_a_call_or_out_of_rotation_is_not_stopped():
    lane = lane_of(4, least=1)
    now = time.monotonic()
    for child in lane.pool.strategy.tasks:
        lane.idle_since[child.name] = now - 100
    children = list(lane.pool.strategy.tasks)
    lane.busy["mail0"] = [7]
    children[1].in_flight = 1
    lane.pool.strategy.remove(children[2])  # being recycled
    assert [child.name for child in to_stop(lane, 20, now)] == ["mail3"]


def test_a_queue_at_its_least_stops_none():
    lane = lane_of(2, least=2)
    for child in lane.pool.strategy.tasks:
        lane.idle_since[child.name] = 0.0
    assert to_stop(lane, 1) == []


def test_a_child_is_idle_from_its_start_and_from_its_last_release_not_while_it_holds_one():
    lane = lane_of(1, average=None)
    child = lane.pool.strategy.tasks[0]
    lane.restarted(child)
    assert child.name in lane.idle_since
    lane.push(1, 0, 1.0)
    task_id, taken = asyncio.run(lane.next(asyncio.Event()))
    assert (task_id, taken) == (1, child) and child.name not in lane.idle_since
    lane.release(child, 1)
    assert child.name in lane.idle_since
    lane.forget(child.name)
    assert child.name not in lane.idle_since


class Stoppable(Child):
    """A child the master may stop: it says so, and stopping it takes a turn of the loop."""

    def __init__(self, name):
        super().__init__(name)
        self.stopped = False

    async def stop(self):
        await asyncio.sleep(0)
        self.stopped, self.running = True, False


class Scaled(Scaling):
    """What ``Scaling`` reads of its master, and nothing else."""

    def __init__(self):
        self._recycling, self._retiring = set(), set()
        self.reloader = SimpleNamespace(busy=False)
        self._stopping = asyncio.Event()
        self.recorder = SimpleNamespace(record=lambda *args: None)


def test_children_chosen_to_stop_are_stopped_unless_one_took_an_id_meanwhile():
    lane = Lane("mail", 1, most=4)
    children = [Stoppable(f"mail{n}") for n in range(3)]
    for child in children:
        lane.pool.add(child)
        lane.idle_since[child.name] = 0.0
    chosen = to_stop(lane, 1)
    assert chosen == children[:2]
    master = Scaled()

    async def retire_in_turn():
        first = asyncio.ensure_future(master._retire(lane, chosen[0]))
        await asyncio.sleep(0)  # while the first is being stopped, the second takes an id
        lane.busy[chosen[1].name] = [7]
        await first
        await master._retire(lane, chosen[1])

    asyncio.run(retire_in_turn())
    assert children[0].stopped and "mail0" not in lane.pool.tasks and "mail0" not in lane.idle_since
    assert not children[1].stopped and children[1] in lane.pool.strategy.tasks
    assert not master._recycling and not master._retiring
