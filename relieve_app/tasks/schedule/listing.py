"""What the admin and ``relieveschedule`` show of each entry: its rule, zone, switch, next and last run."""

from django.utils import timezone

from relieve_app.models import Schedule, TaskRecord
from relieve_app.tasks.schedule.entries import load


def rows(now=None):
    """One dict per valid entry, in the setting's order."""
    now = now or timezone.now()
    states = {state.name: state for state in Schedule.objects.all()}
    found = []
    for name, entry in load().items():
        state = states.get(name)
        enabled = entry.enabled if state is None or state.enabled is None else state.enabled
        last = TaskRecord.objects.filter(schedule=name).order_by("-schedule_slot", "-pk").first()
        found.append(
            {
                "name": name,
                "task": entry.task_path,
                "rule": entry.rule.text,
                "timezone": entry.zone,
                "enabled": enabled,
                "catch_up": entry.catch_up,
                "next_run": entry.rule.next_after(now).isoformat() if enabled else None,
                "last_run": last.schedule_slot.isoformat() if last else None,
                "last_result": last.pk if last else None,
                "last_status": last.status if last else None,
            }
        )
    return found


def ensure_rows(now=None):
    """A Schedule row for each valid entry, so the admin lists the entries no master has seen yet."""
    now = now or timezone.now()
    known = set(Schedule.objects.values_list("name", flat=True))
    Schedule.objects.bulk_create(
        [Schedule(name=name, since=now) for name in load() if name not in known], ignore_conflicts=True
    )


def switch(names, enabled, now=None):
    """The admin's enable or disable, kept in the database. Enabling starts afresh from now: what
    fell due while the entry was off is not run."""
    now = now or timezone.now()
    for name in names:
        state, _new = Schedule.objects.get_or_create(name=name, defaults={"since": now})
        state.enabled, state.updated_at = enabled, now
        if enabled:
            state.since = now
        state.save()
