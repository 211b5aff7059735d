"""The contact message's delivery state, kept in step with the task that delivers it.

Registered with the task engine's hooks (``relieve_app/tasks/hooks.py``) from the app's ``ready()``:
each change of a mail task's state is mirrored on its ``MailOutcome`` in the transaction that writes
it, and a message that failed for good is told to the site owner once that is committed.
"""

from relieve_app.contact import notify
from relieve_app.models import MailOutcome
from relieve_app.tasks import bulk, hooks

MAIL_TASK = "relieve_app.contact.mailtask.send_contact_mail"  # send_contact_mail.module_path

Status = MailOutcome.Status


def register():
    hooks.register(MAIL_TASK, in_transaction=mirror, after_commit=tell_owner)


def mirror(changes):
    """Every message of these changes takes its task's state: one SELECT, and one UPDATE run for
    each message, in the changes' order (one statement for each run of changes that write the same
    fields: usually all of them)."""
    outcomes = bulk.pairs(MailOutcome, "task_result", "id", [change.task.pk for change in changes])
    updates = []  # [(field names, [(outcome id, values)])]
    for change in changes:
        outcome_id = outcomes.get(change.task.pk)
        if outcome_id is None:
            continue
        fields = _fields(change)
        fields["attempts"] = change.task.attempts
        fields["updated_at"] = change.at
        if not updates or updates[-1][0] != tuple(fields):
            updates.append((tuple(fields), []))
        updates[-1][1].append((outcome_id, list(fields.values())))
        change.notes["outcome_id"] = outcome_id
        if change.event is not None:
            change.event["outcome_id"] = outcome_id
            change.event["payload"]["id"] = outcome_id
            if "message" in fields:
                change.event["payload"]["message"] = fields["message"]
    for names, items in updates:
        bulk.update_each(MailOutcome, names, items)


def _fields(change):
    if change.state == hooks.RUNNING:
        return {"status": Status.SENDING, "task_name": change.worker}
    if change.state == hooks.SUCCEEDED:
        value = change.value
        message = value.get("message") if isinstance(value, dict) else None
        message = message or change.event["payload"]["message"]
        return {"status": Status.SENT, "message": message, "error": "", "sent_at": change.at}
    if change.state in (hooks.RETRYING, hooks.FAILED):
        status = Status.FAILED if change.state == hooks.FAILED else Status.RETRYING
        return {"status": status, "error": (change.error or {}).get("message", "")}
    # RELEASED: READY again, for any master. A claim undone before its child took it (given back,
    # paused) counts no attempt: a message never tried is queued again, not retrying.
    tried = change.task.worker_ids
    return {"status": Status.RETRYING if tried else Status.QUEUED, "task_name": tried[-1] if tried else ""}


def tell_owner(change, record):
    """A message that failed for good: the owner hears of it by the master's own mail."""
    outcome_id = change.notes.get("outcome_id")
    args = change.task.args
    if change.state != hooks.FAILED or outcome_id is None or not args or not isinstance(args[0], dict):
        return None
    job = {**args[0], "attempt": change.task.attempts, "id": outcome_id}
    return notify.failed(job, (change.error or {}).get("message", ""), record)
