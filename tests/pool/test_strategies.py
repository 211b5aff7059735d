"""Strategies pick the next task; a strategy only reads ``in_flight``, so small fakes stand in for tasks."""

import asyncio

import pytest

from relieve_app.pool import CloudWorker, NoTaskAvailable, RoundRobinStrategy, WeightedStrategy


class Fake:
    def __init__(self, name, in_flight=0):
        self.name = name
        self.in_flight = in_flight

    def __repr__(self):
        return f"<Fake {self.name} {self.in_flight}>"


def picks(strategy, count):
    return [strategy.next().name for _ in range(count)]


def strategy_of(strategy_class, **in_flight):
    strategy = strategy_class()
    for name, busy in in_flight.items():
        strategy.add(Fake(name, busy))
    return strategy


def test_weighted_picks_the_task_with_fewest_in_flight():
    strategy = strategy_of(WeightedStrategy, a=2, b=0, c=1)
    assert picks(strategy, 3) == ["b", "b", "b"]
    _, b, c = strategy.tasks
    b.in_flight = 5
    assert picks(strategy, 2) == ["c", "c"]
    c.in_flight = 3
    assert picks(strategy, 1) == ["a"]


def test_weighted_breaks_ties_in_turn():
    assert picks(strategy_of(WeightedStrategy, a=0, b=0, c=0), 7) == ["a", "b", "c", "a", "b", "c", "a"]
    assert picks(strategy_of(WeightedStrategy, a=1, b=1, c=1), 4) == ["a", "b", "c", "a"]
    assert picks(strategy_of(WeightedStrategy, a=0, b=4, c=0), 4) == ["a", "c", "a", "c"]


def test_weighted_follows_counts_as_they_change():
    strategy = strategy_of(WeightedStrategy, a=0, b=0)
    a, b = strategy.tasks
    chosen = strategy.next()
    chosen.in_flight += 1  # what a real task does while the call runs
    assert chosen is a
    assert strategy.next() is b
    a.in_flight = 0
    b.in_flight = 1
    assert picks(strategy, 2) == ["a", "a"]


def test_round_robin_goes_in_order_whatever_the_load():
    strategy = strategy_of(RoundRobinStrategy, a=9, b=0, c=3)
    assert picks(strategy, 7) == ["a", "b", "c", "a", "b", "c", "a"]


@pytest.mark.parametrize("strategy_class", [WeightedStrategy, RoundRobinStrategy])
def test_add_remove_and_nothing_to_pick(strategy_class):
    strategy = strategy_class()
    with pytest.raises(NoTaskAvailable):
        strategy.next()
    a, b = Fake("a"), Fake("b")
    strategy.add(a)
    strategy.add(a)  # once only
    strategy.add(b)
    assert strategy.tasks == [a, b]
    strategy.remove(a)
    strategy.remove(a)  # harmless
    assert picks(strategy, 2) == ["b", "b"]
    strategy.remove(b)
    with pytest.raises(NoTaskAvailable):
        strategy.next()


@pytest.mark.parametrize("strategy_class", [WeightedStrategy, RoundRobinStrategy])
def test_removing_a_task_keeps_the_turn_of_the_others(strategy_class):
    strategy = strategy_of(strategy_class, a=0, b=0, c=0)
    assert picks(strategy, 1) == ["a"]
    strategy.remove(strategy.tasks[0])
    assert sorted(picks(strategy, 4)) == ["b", "b", "c", "c"]


def test_two_workers_have_independent_strategies():
    first, second = CloudWorker(), CloudWorker()
    assert first.strategy is not second.strategy
    first.strategy.add(Fake("only in the first"))
    assert first.strategy.next().name == "only in the first"
    with pytest.raises(NoTaskAvailable):
        second.strategy.next()
    one, two = WeightedStrategy(), WeightedStrategy()
    one.add(Fake("x"))
    assert two.tasks == []


def test_the_least_busy_real_task_gets_the_calls(pool, run):
    async def scenario():
        worker, tasks = await pool.cloud("t0", "t1", "t2")
        busy = await pool.wait(worker.call("slow", 20))  # busy until the pool kills it at the end
        assert busy.in_flight == 1
        idle_pids = {task.pid for task in tasks if task is not busy}
        pids = [await pool.wait(worker.get("pid")) for _ in range(6)]
        assert set(pids) == idle_pids
        assert sorted(pids.count(pid) for pid in idle_pids) == [3, 3]  # ties in turn
        assert busy.in_flight == 1

    run(scenario())


def test_concurrent_calls_spread_over_the_tasks(pool, run):
    async def scenario():
        worker, _ = await pool.cloud("t0", "t1", "t2")
        chosen = await pool.wait(asyncio.gather(*(worker.call("slow", 0.2) for _ in range(6))))
        assert sorted(task.name for task in chosen) == ["t0", "t0", "t1", "t1", "t2", "t2"]

    run(scenario())
