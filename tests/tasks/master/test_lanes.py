"""Which child a lane hands its next id to: a free one first, one ahead only while tasks are short."""

import asyncio
from dataclasses import dataclass

from relieve_app.tasks.master import lanes
from relieve_app.tasks.master.lanes import AHEAD, GIVE_BACK, MAX_AHEAD, Lane


@dataclass
class Child:
    """What a lane reads of a child: its name and whether it runs."""

    name: str
    running: bool = True


def lane_of(*children, max_calls=0):
    lane = Lane("default", len(children), max_calls)
    for child in children:
        lane.pool.strategy.add(child)
    return lane


def take(lane):
    stopping = asyncio.Event()

    async def next_or_none():
        try:
            return await asyncio.wait_for(lane.next(stopping), 0.05)
        except TimeoutError:
            return None

    return asyncio.run(next_or_none())


def test_a_free_child_gets_the_most_urgent_id_and_a_busy_one_none_before_any_task_ran():
    lane = lane_of(Child("a"))
    lane.push(1, 0, 1.0)
    lane.push(2, 5, 2.0)
    assert take(lane) == (2, lane.pool.strategy.tasks[0])
    assert take(lane) is None  # busy, and how long tasks take is not known yet
    assert len(lane) == 1


def test_a_child_holds_ahead_what_fits_in_the_ahead_time_of_short_tasks():
    child = Child("a")
    lane = lane_of(child)
    lane.ran(child, AHEAD / 2.5)  # two fit in AHEAD: the one it runs and two ahead
    for task_id in (1, 2, 3, 4):
        lane.push(task_id, 0, float(task_id))
    assert [take(lane) for _ in range(3)] == [(1, child), (2, child), (3, child)]
    assert take(lane) is None
    assert lane.busy == {"a": [1, 2, 3]}
    lane.release(child, 1)
    assert take(lane) == (4, child)


def test_a_child_is_handed_no_more_tasks_than_it_has_left_before_its_recycle():
    child = Child("a")
    lane = lane_of(child, max_calls=3)
    lane.ran(child, AHEAD / 10)  # short: up to MAX_AHEAD ahead, but 3 is all it may run
    for task_id in range(1, 8):
        lane.push(task_id, 0, float(task_id))
    assert [take(lane) for _ in range(3)] == [(1, child), (2, child), (3, child)]
    assert lane.free_child() is None
    assert lane.answered(child) == 1
    lane.release(child, 1)  # one done, two held: one more would be its fourth
    assert lane.free_child() is None
    assert lane.answered(child) == 2
    lane.release(child, 2)
    assert lane.answered(child) == 3
    lane.release(child, 3)
    assert lane.free_child() is None  # all three done: the master recycles it
    lane.restarted(child)  # a new process, three more
    assert [take(lane) for _ in range(3)] == [(4, child), (5, child), (6, child)]
    assert lane.free_child() is None


def test_without_max_calls_a_child_is_handed_tasks_however_many_it_answered():
    child = Child("a")
    lane = lane_of(child)
    for n in range(1, 101):
        assert lane.answered(child) == n
    lane.push(1, 0, 1.0)
    assert take(lane) == (1, child)


def test_however_short_the_tasks_a_child_holds_at_most_max_ahead_beyond_the_one_it_runs():
    child = Child("a")
    lane = lane_of(child)
    lane.ran(child, AHEAD / 1000)
    for task_id in range(1, 10):
        lane.push(task_id, 0, float(task_id))
    taken = [take(lane) for _ in range(MAX_AHEAD + 2)]
    assert taken[-1] is None
    assert lane.busy == {"a": list(range(1, MAX_AHEAD + 2))}


def test_ids_ahead_go_to_the_child_holding_the_fewest():
    first, second = Child("a"), Child("b")
    lane = lane_of(first, second)
    lane.ran(first, AHEAD / 1000)
    for task_id in range(1, 5):
        lane.push(task_id, 0, float(task_id))
    holders = [take(lane)[1].name for _ in range(4)]
    assert sorted(holders[:2]) == ["a", "b"] and sorted(holders[2:]) == ["a", "b"]


def test_long_tasks_get_no_claim_ahead_and_the_urgent_one_waits_in_the_heap():
    child = Child("a")
    lane = lane_of(child)
    lane.ran(child, AHEAD * 10)
    lane.push(1, 0, 1.0)
    lane.push(2, 0, 2.0)
    assert take(lane) == (1, child)
    assert take(lane) is None
    lane.push(3, 9, 3.0)
    lane.release(child, 1)
    assert take(lane) == (3, child)


def test_a_child_that_does_not_run_gets_nothing():
    lane = lane_of(Child("a", running=False))
    lane.push(1, 0, 1.0)
    assert take(lane) is None


def test_what_a_child_holds_behind_its_task_goes_back_once_that_task_has_run_give_back_seconds(monkeypatch):
    lane = lane_of(Child("a"))
    child = lane.pool.strategy.tasks[0]
    lane.push(1, 0, 1.0)
    lane.push(2, 0, 2.0)
    assert take(lane) == (1, child)
    lane.started(child, 1)
    lane.average = AHEAD / 10  # short tasks: the next id is claimed ahead, behind the first
    assert take(lane) == (2, child)
    now = [100.0]
    monkeypatch.setattr(lanes.time, "monotonic", lambda: now[0])  # no event loop runs from here on
    lane.started(child, 1)
    assert not lane.overrun(child) and not lane.holds_behind_overrun()
    now[0] += GIVE_BACK
    assert lane.overrun(child) and lane.holds_behind_overrun() and GIVE_BACK > AHEAD
    lane.release(child, 2)  # given back: nothing held behind it any more
    assert lane.overrun(child) and not lane.holds_behind_overrun()
    lane.ran(child, GIVE_BACK)
    assert not lane.overrun(child)


def test_a_lane_covers_a_wait_only_with_that_much_work_held_ahead():
    lane = lane_of(Child("a"))
    assert not lane.covers(0.004)  # no task ran yet: nothing is held ahead
    lane.average = 0.0003
    assert not lane.covers(0.004)  # MAX_AHEAD tasks of 0.3 ms: 1.2 ms of work
    lane.average = 0.008
    assert lane.covers(0.004)
    lane.average = AHEAD
    assert not lane.covers(0.004)  # tasks this long are not held ahead at all


def test_a_full_lane_gives_back_its_least_urgent_ids_for_a_more_urgent_one_and_none_for_others():
    lane = lane_of(Child("a"))
    for task_id, priority, at in [(1, 0, 1.0), (2, 5, 2.0), (3, 0, 3.0), (4, 0, 4.0), (5, 1, 5.0)]:
        lane.push(task_id, priority, at)
    lane.cancelled.add(4)

    assert lane.make_room(0, 9.0, 2) == []  # no more urgent than the least urgent held
    assert lane.make_room(0, 2.5, 2) == [4, 3]  # older than 3 and 4, as urgent: they go first
    assert lane.cancelled == set()  # a cancel of an id given back is the table's now
    assert lane.make_room(3, 9.0, 10) == [1, 5]  # only those less urgent, however many are asked for
    assert len(lane) == 1
    assert [take(lane)[0]] == [2]  # still a heap, most urgent first
    lane.push(6, 0, 6.0)
    assert lane.make_room(1, 0.5, 1) == [6]  # a push less urgent than all is seen as the least urgent
