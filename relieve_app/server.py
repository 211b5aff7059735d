"""The relieve master: a CloudWorker of mail children, its Unix socket, and the recorder.

The socket (``endpoint.py``) turns each request ``{"op": <name>, "args": {...}}`` into a
call of the ``handle_<op>`` methods at the end of ``Master``.

Delivery is at-least-once. A job is claimed in the database (`sending`) before a child
gets it; whatever interrupts it afterwards leaves the row pending, and the start-up
and periodic sweeps hand it out again.
"""

import asyncio
import collections
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass

from . import notify, recorder, reloading
from .endpoint import Endpoint, StartupError
from .pool import BootError, CallableTask, CloudWorker, NoTaskAvailable, RelieveError, TaskExited
from .status import of_master
from .usage import UsageBook, add_sample, valid

log = logging.getLogger(__name__)

MAIL_SCRIPT = "relieve_app.mail:Mail"
MONITOR = "relieve_app.pool.containers.monitor"


@dataclass
class Options:
    socket_path: str
    workers: int = 4
    max_attempts: int = 5
    retry_delay: float = 5.0  # first retry after this, doubling, capped at max_retry_delay
    max_retry_delay: float = 600.0
    sweep_interval: float = 30.0
    call_timeout: float = 60.0  # a child stuck longer than this in one send is killed
    grace: float = 10.0  # on SIGTERM, how long in-flight sends may take to finish
    client_timeout: float = 10.0  # an idle or slow client connection is closed after this
    max_calls: int = 1000  # a child is replaced after this many sends (0: never)
    max_memory: int = 256 * 2**20  # ... or once its resident memory passes this many bytes (0: never)
    usage_interval: float = 30.0  # how often children are asked for their memory
    script: str = MAIL_SCRIPT
    reload_root: str | None = None  # reload the children when a .py file under it changes

    def check(self):
        if self.workers < 1:
            raise StartupError(f"--workers must be at least 1 (got {self.workers})")
        if self.max_attempts < 1:
            raise StartupError(f"RELIEVE_MAX_ATTEMPTS must be at least 1 (got {self.max_attempts})")

    def retry_after(self, attempts):
        return min(self.retry_delay * 2 ** max(attempts - 1, 0), self.max_retry_delay)


class Master:
    def __init__(self, options):
        self.options = options
        self.pool = CloudWorker()
        self.recorder = recorder.Recorder()
        self.endpoint = Endpoint(options.socket_path, self, client_timeout=options.client_timeout)
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        # An id is held (never handed out twice, never swept) while it is in one of these:
        self._queue = collections.deque()  # waiting for a child, oldest first
        self._queued = set()  # the ids of _queue
        self._timers = {}  # waiting for its retry delay
        self._sending = set()  # claimed, in a child, or its answer being handled
        self._settling = {}  # its attempt's outcome written but not yet committed: id -> that write
        self._background = set()
        self._errors = {}  # outcome id -> last error payload reported by a child
        self._calls = collections.Counter()  # sends per child since it started
        self._recycling = set()
        self.usage = UsageBook()
        self.reloader = reloading.Reloader(self)
        self.started_at = None

    # lifecycle ----------------------------------------------------------------

    async def run(self):
        """Start, serve until SIGTERM/SIGINT, stop gracefully."""
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reloader.request, "SIGHUP")
        try:
            await self._stopping.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await self.stop()

    async def start(self):
        self.options.check()
        self.endpoint.check()
        self.endpoint.claim()
        self.recorder.start()
        try:
            await self.recorder.submit(recorder.check_schema)
        except recorder.DatabaseUnreachable as exc:
            await self.recorder.stop()
            raise StartupError(f"the database cannot be reached ({exc}); check DATABASE_URL") from exc
        except Exception as exc:
            await self.recorder.stop()
            raise StartupError(f"the database is not ready ({exc}); run `python manage.py migrate`") from exc
        self._spawn_children()
        try:
            await self.pool.run()
        except BootError as exc:
            await self.pool.kill()
            await self.recorder.stop()
            raise StartupError(f"the task {self.options.script} could not start: {exc.reason}") from exc
        await self.endpoint.listen()
        log.info(
            "relieve master pid %d listening on %s with %d children",
            os.getpid(),
            self.options.socket_path,
            len(self.pool.tasks),
        )
        self.started_at = time.time()
        self._spawn(self._dispatch_loop())
        self._spawn(self._sweep_loop())
        self._spawn(self._usage_loop())
        self._spawn(self.reloader.run())
        if self.options.reload_root:
            self._spawn(reloading.watch(self.reloader, reloading.StatWatcher(self.options.reload_root)))

    async def stop(self):
        log.info(
            "stopping: no new jobs; waiting up to %.0fs for %d sends", self.options.grace, len(self._sending)
        )
        self._stopping.set()
        self.endpoint.close()
        for timer in self._timers.values():
            timer.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.grace
        while self._sending and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.pool.kill()
        writes = dict(self._settling)
        await self.recorder.stop(timeout=max(deadline - loop.time(), 1.0))
        await asyncio.gather(*writes.values(), return_exceptions=True)
        lost = sorted(pk for pk, write in writes.items() if write.cancelled() or write.exception())
        if lost:
            log.error("the database took no outcome for %s; they stay pending and may be sent again", lost)
        elif writes:
            log.info("%d outcomes waiting for the database were recorded", len(writes))
        log.info("stopped; %d sends were cut short and stay pending for the next start", len(self._sending))

    def _spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # children -----------------------------------------------------------------

    def _spawn_children(self):
        for index in range(self.options.workers):
            task = CallableTask(self.options.script, restart=True, name=f"mail{index}", containers=[MONITOR])
            self._watch(task)
            self.pool.add(task)

    def _watch(self, task):
        name = task.name
        task.on("info", lambda payload=None: self._on_report(name, "info", payload))
        task.on("error", lambda *args: self._on_report(name, "error", *args))
        task.on("start", lambda at: self._on_lifecycle(name, "start", {"pid": task.pid, "at": at}))
        task.on("exit", lambda code: self._on_lifecycle(name, "exit", {"code": code}))
        task.on("restart", lambda: self._on_lifecycle(name, "restart", {"restarts": task.restarts}))
        task.on("start", lambda _at: self._calls.pop(name, None))
        task.on("start", lambda _at: self._wake.set())  # a child back: queued ids may go out
        task.on("usage", lambda usage: self._on_usage(task, usage))

    def _on_report(self, name, event, payload=None, stack=None):
        if not isinstance(payload, dict):  # an uncaught error in the child: message and stack
            payload = {"message": str(payload), "stack": stack}
        outcome_id = payload.get("id") if isinstance(payload.get("id"), int) else None
        if event == "error" and outcome_id is not None:
            self._errors[outcome_id] = payload
        if event == "error" and outcome_id is None:
            log.error("child %s: %s", name, payload.get("message"))
        self.recorder.record(recorder.add_event, name, event, payload, outcome_id)

    def _on_lifecycle(self, name, event, payload):
        if event == "exit" and not self._stopping.is_set():
            log.warning("child %s exited with code %s; restarting", name, payload["code"])
        elif event == "start":
            log.info("child %s started (pid %s)", name, payload["pid"])
        self.recorder.record(recorder.add_event, name, event, payload)

    # dispatching --------------------------------------------------------------

    def holds(self, outcome_id):
        """Whether this master handles the id now: queued, waiting to retry, in a child, or settling."""
        return (
            outcome_id in self._queued
            or outcome_id in self._timers
            or outcome_id in self._sending
            or outcome_id in self._settling
        )

    def _held(self):
        return self._queued | set(self._timers) | self._sending | set(self._settling)

    def enqueue(self, outcome_id):
        """Queue an id for a child unless this master already handles it."""
        if self.holds(outcome_id):
            return False
        self._push(outcome_id)
        return True

    def _push(self, outcome_id, first=False):
        self._queued.add(outcome_id)
        if first:
            self._queue.appendleft(outcome_id)
        else:
            self._queue.append(outcome_id)
        self._wake.set()

    def _retry_later(self, outcome_id, delay):
        def due():
            self._timers.pop(outcome_id, None)
            self.enqueue(outcome_id)

        self._timers[outcome_id] = asyncio.get_running_loop().call_later(delay, due)

    async def _dispatch_loop(self):
        """Hand queued ids out, at most one per running child at a time.

        It sleeps only while nothing can go out; whatever can change that wakes it: a submit, a
        retry falling due, a send ending, a child starting, a recycle ending, a sweep.
        """
        while not self._stopping.is_set():
            capacity = len(self.pool.strategy.tasks) - len(self._sending)
            if not self._queue or capacity <= 0:
                self._wake.clear()
                await self._wake.wait()
                continue
            outcome_id = self._queue.popleft()
            self._queued.discard(outcome_id)
            self._sending.add(outcome_id)
            self._spawn(self._deliver(outcome_id))

    async def _deliver(self, outcome_id):
        try:
            job = await self.recorder.submit(recorder.claim, outcome_id)
            if job is None:  # sent, failed or deleted meanwhile
                return
            await self._send(job)
        except Exception:
            log.exception("dispatching outcome %s failed; it stays pending for the sweep", outcome_id)
        finally:
            self._sending.discard(outcome_id)
            self._wake.set()

    async def _send(self, job):
        outcome_id = job["id"]
        try:
            task = self.pool.strategy.next()
        except NoTaskAvailable:
            log.warning("outcome %s goes back to the queue: no child running", outcome_id)
            self._push(outcome_id, first=True)  # a child's start wakes the dispatch loop
            return
        self.recorder.record(recorder.set_task, outcome_id, task.name)
        self._errors.pop(outcome_id, None)
        try:
            sent = await task.get("send_mail", job, timeout=self.options.call_timeout)
        except TimeoutError:
            limit = self.options.call_timeout
            log.warning("child %s took over %gs on outcome %s; killing it", task.name, limit, outcome_id)
            payload = {
                "id": outcome_id,
                "message": f"no answer from {task.name} within {limit:g}s; killed it",
            }
            self.recorder.record(recorder.add_event, task.name, "timeout", payload, outcome_id)
            with contextlib.suppress(RelieveError):
                await task.kill(signal.SIGKILL)
            self._failed(job, payload)
            return
        except (TaskExited, RelieveError) as exc:
            # Counted as an attempt: a message that kills its child every time must end `failed`.
            self._failed(job, {"message": f"{task.name} went away during the send: {exc}"})
            return
        self._count_call(task)
        if sent:
            self._settle(outcome_id, recorder.mark_sent, outcome_id, f"sent by {task.name}")
            log.info("outcome %s sent by %s (attempt %s)", outcome_id, task.name, job["attempt"])
        else:
            self._failed(job, self._errors.pop(outcome_id, {"message": "the child reported a failure"}))

    def _failed(self, job, payload):
        """An attempt failed: retry later, or `failed` when no attempts are left or the refusal is final."""
        outcome_id, attempts = job["id"], job["attempt"]
        code = payload.get("code")
        error = f"{payload.get('message', '')}" + (f" (SMTP {code})" if code else "")
        permanent = _permanent_refusal(code)
        final = permanent or attempts >= self.options.max_attempts
        if final:
            why = "a permanent refusal" if permanent else f"{attempts} attempts"
            log.warning("outcome %s failed after %s: %s", outcome_id, why, error)
            self._settle(outcome_id, recorder.mark_error, outcome_id, error, True)
            self._spawn(notify.failed(job, error, self.recorder.record))
        else:
            delay = self.options.retry_after(attempts)
            self._settle(
                outcome_id,
                recorder.mark_error,
                outcome_id,
                error,
                False,
                then=lambda: self._retry_later(outcome_id, delay),
            )

    def _settle(self, outcome_id, fn, *args, then=None):
        """Write an attempt's outcome; the id stays held until that write commits, however long
        the database is away, so no sweep can send again what a child already sent."""
        written = self._settling[outcome_id] = self.recorder.persist(fn, *args)

        def settled(future):
            self._settling.pop(outcome_id, None)
            self._wake.set()
            if future.cancelled() or future.exception() is not None:
                log.error("outcome %s could not be recorded: %s", outcome_id, future.exception())
            elif then is not None and not self._stopping.is_set():
                then()

        written.add_done_callback(settled)

    # recycling: a child that has done enough, or grown too big, is replaced when idle ---------

    def _count_call(self, task):
        self._calls[task.name] += 1
        if self.options.max_calls and self._calls[task.name] >= self.options.max_calls:
            self.recycle(task, f"{self._calls[task.name]} sends done")

    def _on_usage(self, task, usage):
        if valid(usage):
            self.usage.note(task.name, usage)
            self.recorder.record(add_sample, task.name, usage)
        memory = usage.get("memory", 0) if isinstance(usage, dict) else 0
        if self.options.max_memory and isinstance(memory, int) and memory > self.options.max_memory:
            self.recycle(
                task, f"resident memory {memory / 2**20:.0f} MiB over {self.options.max_memory / 2**20:g} MiB"
            )

    def recycle(self, task, reason):
        """Take the child out of rotation now; restart it once its sends are done.

        Returns the asyncio task doing it, or None when it is already under way or the master stops.
        """
        if task.name in self._recycling or self._stopping.is_set():
            return None
        self._recycling.add(task.name)
        self.pool.strategy.remove(task)
        return self._spawn(self._recycle(task, reason))

    def is_recycling(self, name):
        return name in self._recycling

    @property
    def stopping(self):
        return self._stopping.is_set()

    async def _recycle(self, task, reason):
        try:
            while task.in_flight and task.running:
                await asyncio.sleep(0.05)
            log.info("recycling child %s: %s", task.name, reason)
            self.recorder.record(recorder.add_event, task.name, "recycle", {"reason": reason})
            await task.restart()
        except RelieveError as exc:
            log.warning("recycling child %s failed: %s; its restart policy takes over", task.name, exc)
        finally:
            self._recycling.discard(task.name)
            self._wake.set()

    # Asked each round, not when a child starts: under a limit smaller than a fresh child, a report at
    # start would recycle every child before its first send, and nothing would ever go out.
    async def _ask_usage(self, task):
        if task.running:
            with contextlib.suppress(RelieveError):
                await task.send("usage")

    async def _usage_loop(self):
        while not self._stopping.is_set():
            for task in self.pool.tasks.values():
                await self._ask_usage(task)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.options.usage_interval)

    # sweeping -----------------------------------------------------------------

    async def _sweep_loop(self):
        stale_after = 0.0  # at start every pending row is an orphan of an earlier master
        while not self._stopping.is_set():
            try:
                await self.sweep(stale_after)
            except Exception:
                log.exception("sweep failed; trying again in %.0fs", self.options.sweep_interval)
            stale_after = max(2.0, self.options.sweep_interval / 2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.options.sweep_interval)

    async def sweep(self, stale_after=0.0):
        """Queue pending rows nobody here handles: left by a crash, a down master or a lost ack."""
        rows = await self.recorder.submit(recorder.pending, self._held(), stale_after)
        found = 0
        for outcome_id, status, attempts, idle in rows:
            if self.holds(outcome_id):  # taken up while the query ran
                continue
            found += 1
            if status == "retrying":
                self._retry_later(outcome_id, max(self.options.retry_after(attempts) - idle, 0.0))
            else:
                self.enqueue(outcome_id)
        if found:
            log.info("sweep: %d pending messages picked up", found)
        self._wake.set()
        return found

    # operations of the socket protocol -----------------------------------------

    def handle_ping(self):
        return {"pid": os.getpid(), "workers": len(self.pool.strategy.tasks)}

    def handle_submit(self, id):
        if not isinstance(id, int) or isinstance(id, bool) or not 1 <= id < 2**63:  # a database's bigint
            raise ValueError(f"id must be a positive 64-bit integer, got {id!r:.50}")
        if self._stopping.is_set():
            raise ValueError("the master is stopping; the sweep of the next start will send it")
        self.enqueue(id)
        return {"queued": id}

    def handle_status(self):
        return of_master(self)

    def handle_reload(self):
        """Like SIGHUP: replace the children one at a time, each after its current send."""
        self.reloader.request("asked over the socket")
        return {"reloading": True}


def _permanent_refusal(code):
    """An SMTP 5xx reply: the server will refuse this message again, so retrying only delays `failed`."""
    return isinstance(code, int) and not isinstance(code, bool) and 500 <= code <= 599


def run(options):
    """Run a master until it is told to stop; raises StartupError when it cannot start."""
    asyncio.run(Master(options).run())
