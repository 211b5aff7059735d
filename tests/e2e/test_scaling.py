"""A queue given a range of children, run by a real runrelieve: it grows while its tasks wait, to
the range's most and no further, and stops what it grew by once idle, cutting no task short."""

import time

import pytest
from django.tasks import TaskResultStatus

from relieve_app.models import TaskEvent
from relieve_app.monitor import metrics, status, status_text
from tests.e2e.conftest import wait_until
from tests.e2e.test_tasks import finished
from tests.tasks_fixtures import basic

pytestmark = pytest.mark.e2e
RANGE_METRICS = ("relieve_queue_min_children", "relieve_queue_max_children")


def queue(master, name="default"):
    return next(q for q in master.status()["queues"] if q["name"] == name)


def status_of(master):
    return status.collect(socket_path=master.socket_path)


def started(paths):
    return sum(path.exists() for path in paths)


def test_a_queue_grows_to_its_most_while_tasks_wait_then_stops_the_children_it_grew_by(master, tmp_path):
    master.env["RELIEVE_SCALE_DOWN_AFTER"] = "1"
    master.start(workers=1, queues=["default=1-3"])
    assert queue(master)["children"] == 1 and queue(master)["scale"] == [1, 3]
    release = tmp_path / "release"
    marks = [tmp_path / f"started{n}" for n in range(5)]
    results = [basic.wait_for_file.enqueue(str(release), 60.0, str(mark)) for mark in marks]

    wait_until(lambda: started(marks) == 3, timeout=30, message="three tasks running at once")
    state = master.status()
    assert queue(master)["children"] == 3  # its most, though two more wait
    names = sorted(c["name"] for c in state["children"] if c["queue"] == "default")
    assert names == ["default0", "default1", "default2"]
    pids = {c["pid"] for c in state["children"] if c["queue"] == "default"}
    assert len(pids) == 3 and None not in pids
    shown = "\n".join(status_text.render(status_of(master), master.socket_path))
    assert "queue default: 3 children of 1-3 (3 taking work), 2 queued, 3 running" in shown
    assert "queue mail: 1 child (1 taking work)" in shown  # no range, none said
    found = {family.name: family for family in metrics.children(1.0, master.socket_path)}
    least, most = ({s.labels["queue"]: s.value for s in found[name].samples} for name in RANGE_METRICS)
    assert least == {"default": 1, "mail": 1} and most == {"default": 3, "mail": 1}
    running = {
        s.labels["queue"]: s.value
        for s in found["relieve_children"].samples
        if s.labels["state"] == "running"
    }
    assert running["default"] == 3

    release.touch()
    done = [finished(result) for result in results]
    assert {result.status for result in done} == {TaskResultStatus.SUCCESSFUL}
    assert len({result.return_value for result in done}) == 3  # each child's pid: three ran them
    assert "queue default grows to" in master.output()

    wait_until(lambda: queue(master)["children"] == 1, timeout=30, message="the queue back to 1 child")
    retired = TaskEvent.objects.filter(event="retire").values_list("task_name", flat=True)
    assert len(retired) == 2 and set(retired) <= set(names)
    assert "stopped: its queue has more children than it needs" in master.output()
    assert "restarting" not in master.output()  # stopped for good, not taken for a crash

    again = [basic.wait_for_file.enqueue(str(release), 60.0) for _ in range(4)]
    assert {finished(result).status for result in again} == {TaskResultStatus.SUCCESSFUL}


def test_a_queue_whose_children_compute_does_not_grow(master):
    master.start(workers=1, queues=["default=1-3"])
    results = [basic.spin.enqueue(1.5) for _ in range(3)]
    wait_until(lambda: queue(master)["sending"] == 1 and queue(master)["queued"] == 2, message="one spinning")
    looks = []
    for _ in range(10):  # through most of the first task: each look would grow a queue that waits
        looks.append(queue(master)["children"])
        time.sleep(0.1)
    assert looks == [1] * 10
    assert {finished(result).return_value for result in results} == {results[0].return_value}  # one child
    assert "grows to" not in master.output()


def test_a_queue_that_grew_stops_gracefully_and_its_tasks_finish(master, tmp_path):
    master.start(workers=1, queues=["default=1-2"])
    release = tmp_path / "release"
    marks = [tmp_path / f"started{n}" for n in range(2)]
    results = [basic.wait_for_file.enqueue(str(release), 60.0, str(mark)) for mark in marks]
    wait_until(lambda: started(marks) == 2, timeout=30, message="two tasks running at once")

    assert master.stop() == 0
    release.touch()
    done = [finished(result, timeout=30) for result in results]
    assert {result.status for result in done} == {TaskResultStatus.SUCCESSFUL}
    assert all(len(result.worker_ids) == 1 for result in done)  # each ran once, where it started
