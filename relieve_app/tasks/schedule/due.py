"""The masters' tick: enqueue each due slot of each enabled entry, once in all.

Runs on the master's recorder thread, in its transaction. Every master ticks; the unique
constraint on (schedule, schedule_slot) of the task table lets exactly one insert of a slot
commit, and the others meet an IntegrityError in their savepoint and move on. A slot missed while
no master was up is run once when one returns; with ``catch_up``, each missed slot runs, up to
``CATCH_UP_LIMIT`` of them (the latest).
"""

import logging
from functools import partial

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.tasks.signals import task_enqueued
from django.utils import timezone

from relieve_app.models import Schedule, TaskRecord
from relieve_app.tasks.schedule import rules

log = logging.getLogger(__name__)


def enqueue_due(entries, now=None):
    """Insert the due slots of ``entries`` (name -> Entry); returns ``(row, entry name)`` of each
    row this master inserted, for it to run at once."""
    now = now or timezone.now()
    created = []
    states = {state.name: state for state in Schedule.objects.filter(name__in=list(entries))}
    for name, entry in entries.items():
        state = states.get(name)
        if state is None:
            state, _new = Schedule.objects.get_or_create(name=name, defaults={"since": now})
        if not (entry.enabled if state.enabled is None else state.enabled):
            continue
        after = max(filter(None, [state.last_slot, state.since]))
        slots = rules.due(entry.rule, after, now, entry.limit)
        for slot in slots:
            row = _insert(entry, slot)
            if row is not None:
                created.append(row)
        if slots:
            newer = Q(last_slot__lt=slots[-1]) | Q(last_slot__isnull=True)
            Schedule.objects.filter(newer, name=name).update(last_slot=slots[-1], updated_at=now)
    return created


def _insert(entry, slot):
    try:
        task = entry.task
    except ImportError as exc:  # the check names it at start; a tick must not stop the others
        log.error("schedule %s: its task %s cannot be imported: %s", entry.name, entry.task_path, exc)
        return None
    try:
        with transaction.atomic():
            row = TaskRecord.objects.create(
                task_path=task.module_path,
                queue_name=task.queue_name,
                backend=task.backend,
                priority=task.priority,
                takes_context=task.takes_context,
                timeout=getattr(task, "timeout", None),
                max_attempts=getattr(task, "max_attempts", None),
                args=list(entry.args),
                kwargs=dict(entry.kwargs),
                schedule=entry.name,
                schedule_slot=slot,
            )
    except IntegrityError:
        return None  # another master enqueued this slot
    transaction.on_commit(partial(_announce, task, row), robust=True)
    return row


def _announce(task, row):
    from relieve_app.tasks.backend import RelieveBackend, to_result

    task_enqueued.send(RelieveBackend, task_result=to_result(row, task))
