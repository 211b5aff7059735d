"""The master's only door to the database: one thread, operations batched into transactions.

The event loop never blocks on the database. Each operation is a plain function run on
the recorder's thread; whatever is waiting when the thread wakes runs in one transaction,
so a burst of events costs one commit. A batch that fails is replayed one operation at a
time, so one bad row cannot take the others with it; an operation the database refuses for its
data is not retried, even one that must not be lost (``never_commits``).
"""

import asyncio
import contextlib
import logging
import queue
import threading
from concurrent.futures import Future

from django.apps import apps
from django.db import DatabaseError, DataError, connection, transaction
from django.utils import timezone

from relieve_app.models import TaskEvent
from relieve_app.tasks import hooks

log = logging.getLogger(__name__)

MAX_BATCH = 100  # writes per transaction: a commit holds SQLite's write lock this long at most
RETRIES = 3  # tries of an ordinary operation; an outcome write is retried until it commits
MAX_RETRY_WAIT = 5.0


class Recorder:
    def __init__(self):
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="relieve-recorder", daemon=True)
        self._abandon = threading.Event()  # set by stop() when the database stays away past its grace

    def start(self):
        self._thread.start()
        return self

    def submit(self, fn, *args):
        """Run ``fn(*args)`` on the recorder thread; returns an awaitable of its result."""
        return asyncio.wrap_future(self._put(fn, args, attempts=RETRIES))

    def record(self, fn, *args):
        """Like submit, for writes nobody waits on: a failure is logged, not raised."""
        self._put(fn, args, attempts=RETRIES).add_done_callback(_log_failure)

    def persist(self, fn, *args):
        """Like submit, for a write that must not be lost: retried until the database takes it.

        Only stop() can end the retries, once its grace is over; the awaitable then raises.
        """
        return asyncio.wrap_future(self._put(fn, args, attempts=None))

    async def stop(self, timeout=None):
        """Finish what is queued, then end the thread; after ``timeout`` stop retrying lost writes.

        When it returns, the thread has closed its connection and ended: the process may exit
        without a thread of its own still inside the database driver.
        """
        done = Future()
        self._queue.put((None, (), done, None))
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(done)), timeout)
        except TimeoutError:
            self._abandon.set()
            await asyncio.wrap_future(done)
        self._thread.join()  # it was told once its connection closed: only its return is left

    def _put(self, fn, args, attempts):
        future = Future()
        self._queue.put((fn, args, future, attempts))
        return future

    def _serve(self):
        stop = []
        try:
            while not stop:
                batch = [self._queue.get()]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = [item for item in batch if item[0] is None]
                # A waiter that was cancelled (the master stopping) no longer wants its operation.
                work = [
                    item for item in batch if item[0] is not None and item[2].set_running_or_notify_cancel()
                ]
                for group in _groups(work):
                    self._run(group)
        finally:
            try:
                connection.close()
            finally:
                for _fn, _args, future, _attempts in stop:
                    future.set_result(None)

    def _run(self, batch):
        """Writes in one short transaction; a read alone, outside any (it never holds a write lock).

        The connection is kept from batch to batch: CONN_MAX_AGE is a request's lifetime, and at
        its default of 0 ``close_old_connections()`` would reconnect for every batch. One that
        broke is dropped when a batch fails (``_reconnect``) and opened again for the replay.
        """
        results = []
        try:
            if _reads(batch[0][0]):
                results = [batch[0][0](*batch[0][1])]
            else:
                with transaction.atomic():
                    results = [fn(*args) for fn, args, _future, _attempts in batch]
        except Exception as exc:
            if len(batch) > 1:
                log.warning(
                    "a batch of %d database writes failed (%s); replaying them one by one", len(batch), exc
                )
            _reconnect()
            for item in batch:
                self._run_one(*item)
            return
        for (_fn, _args, future, _attempts), result in zip(batch, results, strict=True):
            future.set_result(result)

    def _run_one(self, fn, args, future, attempts):
        """Try ``attempts`` times (None: until it commits or stop() gives up), waiting between tries."""
        tries = 0
        while True:
            tries += 1
            try:
                if _reads(fn):
                    result = fn(*args)
                else:
                    with transaction.atomic():
                        result = fn(*args)
            except Exception as exc:
                out_of_tries = attempts is not None and tries >= attempts
                if out_of_tries or self._abandon.is_set() or never_commits(exc):
                    future.set_exception(exc)
                    return
                if attempts is None and tries % 20 == 1:
                    log.warning("database write %s failed (%s); retrying until it commits", fn.__name__, exc)
                _reconnect()
                self._abandon.wait(min(0.2 * 2 ** (tries - 1), MAX_RETRY_WAIT))
            else:
                future.set_result(result)
                return


def never_commits(exc):
    """A write the database refuses for its data (a NUL in PostgreSQL text, a number out of range),
    or one an app's hook fails (``hooks.HookFailed``): retrying the same write would end the same
    way, so it fails at once, and its caller decides."""
    return isinstance(exc, DataError | hooks.HookFailed)


def reads_only(fn):
    """Marks an operation that writes nothing: it runs outside a transaction, alone."""
    fn.reads_only = True
    return fn


def _reads(fn):
    return getattr(fn, "reads_only", False)


def _groups(work):
    """Consecutive writes together, each read on its own, in the order they came."""
    group = []
    for item in work:
        if _reads(item[0]):
            if group:
                yield group
                group = []
            yield [item]
        else:
            group.append(item)
    if group:
        yield group


def _reconnect():
    """Drop a connection a failure may have broken; the next query opens a new one."""
    with contextlib.suppress(Exception):
        connection.close()


def _log_failure(future):
    if future.exception() is not None:
        log.error("recording to the database failed", exc_info=future.exception())


# Operations of the master's own: each runs on the recorder thread (task state: taskstore.py). ------


def add_event(task_name, event, payload, at=None):
    at = at or timezone.now()
    TaskEvent.objects.create(task_name=task_name, event=event, payload=payload, created_at=at)


class DatabaseUnreachable(Exception):
    """No connection to the database could be made."""


class SchemaMissing(Exception):
    """The database answers but lacks this app's tables."""


@reads_only
def check_schema():
    """Tell an unreachable database from a missing schema, so the master can say which."""
    try:
        connection.ensure_connection()
        tables = set(connection.introspection.table_names())
    except DatabaseError as exc:
        raise DatabaseUnreachable(str(exc).strip() or type(exc).__name__) from exc
    missing = [model._meta.db_table for model in apps.get_app_config("relieve_app").get_models()]
    missing = [table for table in missing if table not in tables]
    if missing:
        raise SchemaMissing(f"missing tables: {', '.join(missing)}")
