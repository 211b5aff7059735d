"""Your row and its task's outcome, in one transaction: what an app registers to follow its tasks.

The master writes every change of a task's state (claimed and running, back to READY, succeeded,
failed) on its database thread, in transactions it commits itself. An app that keeps a row of its
own beside a task (an order's payment state, a message's delivery) registers a hook for the task's
path; the hook runs inside the very transaction that writes the task's change, so the two rows are
committed together or not at all, and never tell different stories.

    from relieve_app.tasks import hooks

    def mirror(changes):
        for change in changes:
            Report.objects.filter(task_result=change.task.pk).update(state=change.state)

    hooks.register("myapp.tasks.build_report", in_transaction=mirror)

Register from your ``AppConfig.ready()``: the master imports every installed app before it starts.
This module imports nothing of the master, so the web process may import it too.

``in_transaction(changes)`` gets, once per transaction, the list of that path's changes in it, so one
query may serve them all; it must not swallow database errors (the transaction is then replayed).
Any other error it raises (``HookFailed``) would be raised again by every replay: the master then
writes the changes of that transaction one at a time, and an attempt's outcome whose hook still
raises ends the task FAILED with the hook's error, written without that hook.
``after_commit(change, record)`` runs on the master's event loop once an attempt's outcome is
committed (not for claims or releases), for side effects such as a mail; a coroutine it returns is
run as a task of the master's. It must not block: work that waits goes to a thread
(``asyncio.to_thread``). ``record(fn, *args)`` runs ``fn(*args)`` later on the master's database
thread, in a transaction, for a row it wants to write afterwards.
"""

import logging
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import InterfaceError, OperationalError

log = logging.getLogger(__name__)

RUNNING = "running"  # claimed by a master and handed to a child (``worker``)
RETRYING = "retrying"  # the attempt failed (``error``); READY again, for another attempt later
RELEASED = "released"  # READY again: taken back from a master that stopped, or a claim given back unstarted
SUCCEEDED = "succeeded"  # the attempt returned ``value``
FAILED = "failed"  # the attempt failed for good (``error``)


@dataclass
class Change:
    """One change of one task's state, as the master writes it."""

    task: Any  # the TaskRecord as written (status, worker_ids, errors, return_value...)
    state: str  # one of RUNNING, RETRYING, RELEASED, SUCCEEDED, FAILED
    at: datetime
    worker: str = ""  # the child that ran (or runs) the attempt
    value: Any = None  # SUCCEEDED: what the task returned
    error: dict | None = None  # RETRYING, FAILED: exception_class_path, message, traceback
    # The TaskEvent this change writes (SUCCEEDED, RETRYING, FAILED), as fields a hook may add to:
    # "payload" (a dict) and a link to the hook's own row ("outcome_id"). None: no event is written.
    event: dict | None = None
    notes: dict = field(default_factory=dict)  # what the in_transaction hook leaves for after_commit
    without: tuple = ()  # hooks left out of this change: they raised on it (``HookFailed``)


@dataclass(frozen=True)
class Hook:
    in_transaction: Any = None
    after_commit: Any = None


_hooks = {}  # task path -> [Hook]

# A database that is away or busy: the transaction is replayed, and the hook runs again.
_PASSING = (OperationalError, InterfaceError)


class HookFailed(Exception):
    """An ``in_transaction`` hook raised: replaying the write would run it again, to the same end."""

    def __init__(self, hook, path, error):
        super().__init__(f"a hook of {path} failed: {type(error).__name__}: {_text(error)}")
        self.hook, self.path, self.error = hook, path, error

    def as_error(self):
        """The failure an attempt's outcome becomes: the hook's exception, saying whose it was."""
        kind = type(self.error)
        return {
            "exception_class_path": f"{kind.__module__}.{kind.__qualname__}",
            "message": str(self),
            "traceback": "".join(traceback.format_exception(self.error)),
        }


def _text(error):
    try:
        return str(error)
    except Exception:
        return f"<unprintable {type(error).__name__}>"


def register(path, *, in_transaction=None, after_commit=None):
    """Follow the task at ``path`` (its module path, e.g. "myapp.tasks.build_report")."""
    if in_transaction is None and after_commit is None:
        raise ValueError("register needs in_transaction, after_commit or both")
    hook = Hook(in_transaction, after_commit)
    if hook not in _hooks.setdefault(path, []):
        _hooks[path].append(hook)
    return hook


def unregister(path, hook):
    """Undo ``register``; tests use it."""
    hooks = _hooks.get(path, [])
    if hook in hooks:
        hooks.remove(hook)
    if not hooks:
        _hooks.pop(path, None)


def paths():
    """The task paths some hook follows."""
    return set(_hooks)


def followed(path):
    return path in _hooks


def wants_commit(path, without=()):
    return any(hook.after_commit and hook not in without for hook in _hooks.get(path, ()))


def run_in_transaction(changes):
    """Called by the master inside the transaction that writes ``changes``; an error rolls it back.

    A hook's error is raised as ``HookFailed`` unless the database was away or busy (the write is
    then replayed as it is). A hook is not given the changes it is left out of (``Change.without``).
    """
    by_path = {}
    for change in changes:
        if change.task.task_path in _hooks:
            by_path.setdefault(change.task.task_path, []).append(change)
    for path, group in by_path.items():
        for hook in list(_hooks.get(path, ())):
            mine = [change for change in group if hook not in change.without]
            if hook.in_transaction is None or not mine:
                continue
            try:
                hook.in_transaction(mine)
            except _PASSING:
                raise
            except Exception as exc:
                raise HookFailed(hook, path, exc) from exc


def after_commit(change, record):
    """Called by the master on its event loop once ``change`` is committed; returns the coroutines
    the hooks gave back, for the master to run. A hook that raises is logged, not fatal."""
    pending = []
    for hook in list(_hooks.get(change.task.task_path, ())):
        if hook.after_commit is None or hook in change.without:
            continue
        try:
            result = hook.after_commit(change, record)
        except Exception:
            path, pk = change.task.task_path, change.task.pk
            log.exception("a hook of %s failed after the commit of task %s", path, pk)
            continue
        if result is not None and hasattr(result, "__await__"):
            pending.append(result)
    return pending
