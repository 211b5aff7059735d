"""Warm-ups: work run once before a zygote's fork, so that its children find it done."""

import logging
import os
import threading

import pytest

from relieve_app.pool import warm_up


@pytest.fixture
def registry(monkeypatch):
    """A registry of this test's own: the engine's warm-ups stay as they are."""
    monkeypatch.setattr(warm_up, "_registered", [])
    monkeypatch.setattr(warm_up, "_ran", set())
    return warm_up


def test_each_warm_up_runs_once_in_the_order_registered(registry):
    calls = []
    first = registry.register(lambda: calls.append("first"))
    registry.register(lambda: calls.append("second"))
    registry.register(first)  # registered twice, run once
    assert registry.run() == 2
    assert registry.run() == 0
    assert calls == ["first", "second"]


def test_one_registered_after_a_run_runs_at_the_next(registry):
    calls = []
    registry.register(lambda: calls.append("early"))
    registry.run()
    registry.register(lambda: calls.append("late"))
    assert registry.run() == 1
    assert calls == ["early", "late"]


def test_a_failing_warm_up_is_logged_skipped_and_not_tried_again(registry, caplog):
    calls = []

    def broken():
        calls.append("broken")
        raise RuntimeError("no sample to rehearse")

    registry.register(broken)
    registry.register(lambda: calls.append("after"))
    with caplog.at_level(logging.WARNING, logger=warm_up.__name__):
        assert registry.run() == 1
    assert calls == ["broken", "after"]
    (record,) = caplog.records
    assert "test_warm_up.test_a_failing_warm_up_is_logged_skipped_and_not_tried_again.<locals>.broken" in (
        record.getMessage()
    )
    assert "no sample to rehearse" in caplog.text
    assert registry.run() == 0
    assert calls == ["broken", "after"]


def test_the_engines_own_warm_up_is_registered_and_leaves_nothing_a_fork_would_share():
    assert warm_up.rehearse_channel in warm_up._registered
    fds, threads = sorted(os.listdir("/proc/self/fd")), threading.active_count()
    warm_up.rehearse_channel()
    # Its socket pair, and its loop's selector and self-pipe, are closed: a loop left open would keep them.
    assert sorted(os.listdir("/proc/self/fd")) == fds
    assert threading.active_count() == threads
