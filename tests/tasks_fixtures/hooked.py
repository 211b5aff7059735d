"""A task that a project's app follows through the engine's hooks: a row of its own (here a
TaskEvent named "hooked") written in the transaction of each change of the task's state, and one
more once a final outcome is committed; and a task whose hook refuses one value on every try."""

from django.tasks import task

from relieve_app.models import TaskEvent
from relieve_app.tasks import hooks


@task
def double(n):
    if n < 0:
        raise ValueError("no negative numbers")
    return 2 * n


def follow(changes):
    TaskEvent.objects.bulk_create(
        TaskEvent(task_name="hooked", event=change.state, task_result_id=change.task.pk, created_at=change.at)
        for change in changes
    )
    for change in changes:
        if change.event is not None:  # the master's own event of this change says it was followed
            change.event["payload"]["hooked"] = True


def committed(change, record):
    record(_note_commit, change.task.pk, change.state)


def _note_commit(task_id, state):
    TaskEvent.objects.create(task_name="hooked", event=f"committed {state}", task_result_id=task_id)


@task
def keep(value):
    return value


def file_away(changes):
    """Files each value as a row "filed", but refuses one, however often it is asked."""
    for change in changes:
        if change.value == "unfileable":
            raise ValueError(f"cannot file {change.value!r}")
    TaskEvent.objects.bulk_create(
        TaskEvent(task_name="filed", event=change.state, task_result_id=change.task.pk, created_at=change.at)
        for change in changes
    )


def filed(change, record):
    record(_note_filed, change.task.pk, change.state)


def _note_filed(task_id, state):
    TaskEvent.objects.create(task_name="filed", event=f"committed {state}", task_result_id=task_id)


def register():
    hooks.register(double.module_path, in_transaction=follow, after_commit=committed)
    hooks.register(keep.module_path, in_transaction=file_away, after_commit=filed)
