"""The relieve master: one CloudWorker of children per queue, its Unix socket, and the recorder.

The socket (``endpoint.py``) turns each request ``{"op": <name>, "args": {...}}`` into a
call of the ``handle_<op>`` methods at the end of ``Master``.

Every task is run at least once. A task is claimed in the database (READY -> RUNNING, owned
by this master) before a child gets it; whatever interrupts it afterwards leaves the row
behind, and the start-up and periodic sweeps hand it out again. Only the recorder writes
task state; ``taskstore.py`` holds those writes.
"""

import asyncio
import contextlib
import logging
import math
import os
import signal
import time
from dataclasses import dataclass, field

from relieve_app.contact import notify
from relieve_app.monitor.status import of_master
from relieve_app.pool import BootError, CallableTask, RelieveError, RemoteError, TaskExited
from relieve_app.tasks.master import reloading, wakeup
from relieve_app.tasks.master.endpoint import Endpoint, StartupError
from relieve_app.tasks.master.identity import MasterIdentity
from relieve_app.tasks.master.lanes import Lane
from relieve_app.tasks.master.locks import MasterLock, socket_refusal, sqlite_refusal
from relieve_app.tasks.master.presence import Presence
from relieve_app.tasks.master.usage import UsageBook, add_sample, valid
from relieve_app.tasks.store import leases, recorder, taskstore
from relieve_app.tasks.store.ledger import Ledger

log = logging.getLogger(__name__)

CONTACT_MAIL = "relieve_app.contact.mailtask.send_contact_mail"  # its final failure is told to the owner

RUNNER = "relieve_app.tasks.runner:Runner"
MONITOR = "relieve_app.pool.containers.monitor"
MAX_PRIORITY = 100


@dataclass
class Options:
    socket_path: str
    workers: int = 4  # children of a queue that `queues` does not name
    queues: dict = field(default_factory=lambda: {"default": None})  # name -> children, None: `workers`
    max_attempts: int = 5
    retry_delay: float = 5.0  # first retry after this, doubling, capped at max_retry_delay
    max_retry_delay: float = 600.0
    sweep_interval: float = 30.0
    call_timeout: float = 60.0  # a child stuck longer than this in one task is killed
    grace: float = 10.0  # on SIGTERM, how long tasks in flight may take to finish
    client_timeout: float = 10.0  # an idle or slow client connection is closed after this
    max_calls: int = 1000  # a child is replaced after this many tasks (0: never)
    max_memory: int = 256 * 2**20  # ... or once its resident memory passes this many bytes (0: never)
    usage_interval: float = 30.0  # how often children are asked for their memory
    script: str = RUNNER
    host: str = ""  # the name this master registers under; empty: the machine's host name
    heartbeat: float = 5.0  # how often the master renews its lease and those of the rows it runs
    lease: float = 30.0  # a master silent this long is gone, and the rows it held are taken over
    lock_path: str | None = None  # SQLite: the file whose lock makes this the database's only master
    database: str = ""  # named in messages about the lock
    listen: dict | None = None  # PostgreSQL: parameters of the LISTEN connection for wake-ups
    durable: bool = False  # PostgreSQL: wait for the disk at every claim and outcome (see taskstore.apply)
    reload_root: str | None = None  # reload the children when a .py file under it changes

    def check(self):
        if self.workers < 1:
            raise StartupError(f"--workers must be at least 1 (got {self.workers})")
        if not self.queues:
            raise StartupError("no queue to serve: TASKS names none for the relieve backend")
        for name, size in self.queues.items():
            if size is not None and size < 1:
                raise StartupError(f"queue {name!r} needs at least 1 child (got {size})")
        if self.max_attempts < 1:
            raise StartupError(f"RELIEVE_MAX_ATTEMPTS must be at least 1 (got {self.max_attempts})")
        if self.heartbeat <= 0 or self.lease < 2 * self.heartbeat:
            raise StartupError(
                f"RELIEVE_LEASE ({self.lease:g}s) must be at least twice RELIEVE_HEARTBEAT "
                f"({self.heartbeat:g}s), which must be positive: one late beat must not lose the lease"
            )

    def sizes(self):
        return {name: size or self.workers for name, size in self.queues.items()}

    def retry_after(self, attempts):
        return min(self.retry_delay * 2 ** max(attempts - 1, 0), self.max_retry_delay)


class Master:
    def __init__(self, options):
        self.options = options
        self.identity = MasterIdentity.current(options.host)
        self.owner = self.identity.id
        self.lanes = {name: Lane(name, size) for name, size in options.sizes().items()}
        self.recorder = recorder.Recorder()
        self.lease = options.lease
        self.ledger = Ledger(self.recorder, self.owner, self.lease, durable=options.durable)
        self.presence = Presence(
            self.recorder,
            self.identity,
            lease=options.lease,
            interval=options.heartbeat,
            queues=list(self.lanes),
            children=lambda: sum(len(lane.pool.strategy.tasks) for lane in self.lanes.values()),
            holding=lambda: self._running | self._settling.keys(),
        )
        self.lock = None
        if options.lock_path:
            self.lock = MasterLock(options.lock_path, sqlite_refusal(options.database))
        # Held for life beside the socket: the master before this one there, if it never let go,
        # was killed, and its rows need not wait for its lease to run out.
        self.tenure = MasterLock(f"{options.socket_path}.lock", socket_refusal(options.socket_path))
        self._gone = set()  # ids of masters known to have ended without stopping
        self.endpoint = Endpoint(options.socket_path, self, client_timeout=options.client_timeout)
        self._stopping = asyncio.Event()
        self._known = {}  # id -> (queue, priority, at): ready, waiting or running here; never twice
        self._running = set()  # claimed, in a child, or its answer being handled
        self._settling = {}  # its attempt's outcome handed to the ledger, not yet committed: id -> write
        self._timers = {}
        self._background = set()
        self._calls = {}  # tasks per child since it started
        self._recycling = set()
        self.usage = UsageBook()
        self.reloader = reloading.Reloader(self)
        self.started_at = None
        self._unserved = set()  # queues found in the table that this master has no children for

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
        self._note_gone(self.tenure.acquire(self.identity))
        try:
            if self.lock is not None:
                self._note_gone(self.lock.acquire(self.identity))
            await self._start()
        except BaseException:
            # Not started: this master held nothing, and must not pass for one that was killed.
            for lock in (self.lock, self.tenure):
                if lock is not None:
                    lock.give_back()
            raise

    async def _start(self):
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
            await asyncio.gather(*(lane.pool.run() for lane in self.lanes.values()))
        except BootError as exc:
            await self._kill_children()
            await self.recorder.stop()
            raise StartupError(f"the task {self.options.script} could not start: {exc.reason}") from exc
        await self.presence.join()
        await self.endpoint.listen()
        log.info(
            "relieve master %s listening on %s; children per queue: %s",
            self.owner,
            self.options.socket_path,
            ", ".join(f"{name}={lane.size}" for name, lane in self.lanes.items()),
        )
        self.started_at = time.time()
        for lane in self.lanes.values():
            self._spawn(self._dispatch_loop(lane))
        self._spawn(self._sweep_loop())
        self._spawn(self.presence.run(self._stopping))
        if self.options.listen is not None:
            from relieve_app.tasks.master.listener import (
                Listener,  # psycopg: installed where the database is PostgreSQL
            )

            channels = {wakeup.channel(name): name for name in self.lanes}
            listener = Listener(self.options.listen, channels, self._on_notify, self._on_listening)
            self._spawn(listener.run())
        self._spawn(self._usage_loop())
        self._spawn(self.reloader.run())
        if self.options.reload_root:
            self._spawn(reloading.watch(self.reloader, reloading.StatWatcher(self.options.reload_root)))

    async def stop(self):
        log.info(
            "stopping: no new tasks; waiting up to %.0fs for %d running",
            self.options.grace,
            len(self._running),
        )
        self._stopping.set()
        self.endpoint.close()
        for timer in self._timers.values():
            timer.cancel()
        for lane in self.lanes.values():
            lane.wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.grace
        while self._running and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._kill_children()
        writes = dict(self._settling)
        while self.ledger.busy and loop.time() < deadline:  # outcomes still on their way in
            await asyncio.sleep(0.05)
        self.ledger.close()
        await self._leave(max(deadline - loop.time(), 1.0))
        await self.recorder.stop(timeout=max(deadline - loop.time(), 1.0))
        await asyncio.gather(*writes.values(), return_exceptions=True)
        lost = sorted(pk for pk, write in writes.items() if write.cancelled() or write.exception())
        if lost:
            log.error("the database took no outcome for %s; they stay pending and may run again", lost)
        elif writes:
            log.info("%d outcomes waiting for the database were recorded", len(writes))
        if self.lock is not None:
            self.lock.release()
        self.tenure.release()
        log.info("stopped")

    def _note_gone(self, predecessor):
        if predecessor is not None and predecessor not in self._gone:
            self._gone.add(predecessor)
            log.warning("master %s ended without stopping; what it held is taken over now", predecessor)

    async def _leave(self, timeout):
        """Give back what this master still holds, READY for any master at once, and remove its row."""
        try:
            released = await asyncio.wait_for(self.recorder.submit(leases.release, self.owner), timeout)
        except Exception as exc:
            log.warning(
                "could not release this master's tasks (%s); they are taken over once their lease ends", exc
            )
        else:
            if released:
                log.info("%d tasks cut short by the stop are ready again for any master", released)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.presence.leave(), timeout)

    async def _kill_children(self):
        await asyncio.gather(*(lane.pool.kill() for lane in self.lanes.values()), return_exceptions=True)

    def _spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # children -----------------------------------------------------------------

    def _spawn_children(self):
        for lane in self.lanes.values():
            for index in range(lane.size):
                child = CallableTask(
                    self.options.script, restart=True, name=f"{lane.name}{index}", containers=[MONITOR]
                )
                self._watch(lane, child)
                lane.pool.add(child)

    def _watch(self, lane, child):
        name = child.name
        child.on("error", lambda *args: self._on_child_error(name, *args))
        child.on("start", lambda at: self._on_lifecycle(name, "start", {"pid": child.pid, "at": at}))
        child.on("exit", lambda code: self._on_lifecycle(name, "exit", {"code": code}))
        child.on("restart", lambda: self._on_lifecycle(name, "restart", {"restarts": child.restarts}))
        child.on("start", lambda _at: self._calls.pop(name, None))
        child.on("start", lambda _at: lane.wake.set())
        child.on("usage", lambda usage: self._on_usage(lane, child, usage))

    def _on_child_error(self, name, message=None, stack=None):
        payload = message if isinstance(message, dict) else {"message": str(message), "stack": stack}
        log.error("child %s: %s", name, payload.get("message"))
        self.recorder.record(recorder.add_event, name, "error", payload)

    def _on_lifecycle(self, name, event, payload):
        if event == "exit" and not self._stopping.is_set():
            log.warning("child %s exited with code %s; restarting", name, payload["code"])
        elif event == "start":
            log.info("child %s started (pid %s)", name, payload["pid"])
        self.recorder.record(recorder.add_event, name, event, payload)

    # queueing -----------------------------------------------------------------

    def enqueue(self, task_id, queue="default", priority=0, delay=0.0, at=None):
        """Take a task id unless this master already has it; ready now, or after ``delay`` seconds."""
        if task_id in self._known or queue not in self.lanes:
            return False
        self._known[task_id] = (queue, priority, time.time() + delay if at is None else at)
        if delay > 0:
            self._later(task_id, delay)
        else:
            self._ready(task_id)
        return True

    def _ready(self, task_id):
        queue, priority, at = self._known[task_id]
        self.lanes[queue].push(task_id, priority, at)

    def _later(self, task_id, delay):
        def due():
            self._timers.pop(task_id, None)
            if task_id in self._known:
                self._ready(task_id)

        self._timers[task_id] = asyncio.get_running_loop().call_later(delay, due)

    def _forget(self, task_id):
        self._known.pop(task_id, None)

    # dispatching --------------------------------------------------------------

    async def _dispatch_loop(self, lane):
        """Pair the lane's most urgent ready id with a free child, one task per child at a time."""
        while (pair := await lane.next(self._stopping)) is not None:
            task_id, child = pair
            self._running.add(task_id)
            self._spawn(self._attempt(lane, child, task_id))

    async def _attempt(self, lane, child, task_id):
        try:
            job = await self.ledger.claim(task_id, lane.name, child.name)
            if job is None:  # finished, running elsewhere, in another queue, or gone
                self._forget(task_id)
            elif "later" in job:  # its run_after is not reached yet, by the database's clock
                self._later(task_id, max(job["later"], 0.01))
            else:
                await self._run(lane, child, job)
        except Exception:
            log.exception("dispatching task %s failed; the sweep will hand it out again", task_id)
            self._forget(task_id)
        finally:
            self._running.discard(task_id)
            lane.release(child)

    async def _run(self, lane, child, job):
        task_id = job["id"]
        limit = job["timeout"] or self.options.call_timeout
        try:
            answer = await child.get("run", job, timeout=limit)
        except TimeoutError:
            log.warning("child %s took over %gs on task %s; killing it", child.name, limit, task_id)
            message = f"no answer from {child.name} within {limit:g}s; killed it"
            with contextlib.suppress(RelieveError):
                await child.kill(signal.SIGKILL)
            self._failed(job, child, _error(TimeoutError, message), event="timeout", retry=True)
            return
        except RemoteError as exc:  # the child's script has no working run(): nothing to retry
            self._failed(job, child, _error(RemoteError, str(exc)), retry=False)
            return
        except (TaskExited, RelieveError) as exc:
            # Counted as an attempt: a task that kills its child every time must end FAILED.
            message = f"{child.name} went away during the task: {exc}"
            self._failed(job, child, _error(TaskExited, message), retry=True)
            return
        self._count_call(lane, child)
        if not isinstance(answer, dict) or "ok" not in answer:
            self._failed(job, child, _error(RemoteError, f"unreadable answer {answer!r:.200}"), retry=False)
        elif answer["ok"]:
            self._settle(task_id, self.ledger.outcome(task_id, child.name, "success", answer.get("value")))
            log.info("task %s done by %s (attempt %s)", task_id, child.name, job["attempt"])
        else:
            delay = answer.get("delay")
            self._failed(job, child, answer.get("error") or {}, retry=bool(answer.get("retry")), delay=delay)

    def _failed(self, job, child, error, event="error", retry=False, delay=None):
        task_id, attempt = job["id"], job["attempt"]
        if retry and self._stopping.is_set():
            return  # cut short by the stop: released to READY, for any master to run again
        limit = job.get("max_attempts") or self.options.max_attempts
        retry_in = None
        if retry and attempt < limit:
            retry_in = self.options.retry_after(attempt) if delay is None else float(delay)
        elif retry and attempt >= limit:
            error = {**error, "message": f"{error.get('message', '')} (gave up after {attempt} attempts)"}
        written = self.ledger.outcome(task_id, child.name, "failure", error, event, retry_in)
        if retry_in is None:
            log.warning("task %s failed on attempt %d: %s", task_id, attempt, error.get("message"))
            self._settle(task_id, written)
            self._notify_owner(job, error)
        else:
            self._settle(task_id, written, then=lambda: self._later(task_id, retry_in))

    def _settle(self, task_id, written, then=None):
        """The id stays held until its outcome is committed, however long the database is away,
        so no sweep or submit runs again what a child already ran; then it is let go, or retried."""
        self._settling[task_id] = written

        def settled(future):
            self._settling.pop(task_id, None)
            error = None if future.cancelled() else future.exception()
            if future.cancelled() or error is not None:
                log.error("the outcome of task %s could not be recorded: %s", task_id, error)
            elif then is not None and not self._stopping.is_set():
                then()
                return
            self._forget(task_id)

        written.add_done_callback(settled)

    def _notify_owner(self, job, error):
        """A contact message that failed for good: the owner hears of it by the master's own mail."""
        if job.get("path") != CONTACT_MAIL or not job.get("args") or not isinstance(job["args"][0], dict):
            return
        self._spawn(self._tell_owner({**job["args"][0], "attempt": job["attempt"]}, job["id"], error))

    async def _tell_owner(self, mail_job, task_id, error):
        outcome_id = await self.recorder.submit(notify.outcome_of, task_id)
        if outcome_id is not None:
            message = error.get("message", "")
            await notify.failed({**mail_job, "id": outcome_id}, message, self.recorder.record)

    # recycling: a child that has done enough, or grown too big, is replaced when idle ---------

    def _count_call(self, lane, child):
        self._calls[child.name] = self._calls.get(child.name, 0) + 1
        if self.options.max_calls and self._calls[child.name] >= self.options.max_calls:
            self.recycle(lane, child, f"{self._calls[child.name]} tasks done")

    def _on_usage(self, lane, child, usage):
        if valid(usage):
            self.usage.note(child.name, usage)
            self.recorder.record(add_sample, child.name, usage)
        memory = usage.get("memory", 0) if isinstance(usage, dict) else 0
        if self.options.max_memory and isinstance(memory, int) and memory > self.options.max_memory:
            limit = self.options.max_memory / 2**20
            self.recycle(lane, child, f"resident memory {memory / 2**20:.0f} MiB over {limit:g} MiB")

    def recycle(self, lane, child, reason):
        """Take the child out of rotation now; restart it once its task is done.

        Returns the asyncio task doing it, or None when it is already under way or the master stops.
        """
        if child.name in self._recycling or self._stopping.is_set():
            return None
        self._recycling.add(child.name)
        lane.pool.strategy.remove(child)
        return self._spawn(self._recycle(lane, child, reason))

    def is_recycling(self, name):
        return name in self._recycling

    @property
    def stopping(self):
        return self._stopping.is_set()

    async def _recycle(self, lane, child, reason):
        try:
            while (child.in_flight or child.name in lane.busy) and child.running:
                await asyncio.sleep(0.05)
            log.info("recycling child %s: %s", child.name, reason)
            self.recorder.record(recorder.add_event, child.name, "recycle", {"reason": reason})
            await child.restart()
        except RelieveError as exc:
            log.warning("recycling child %s failed: %s; its restart policy takes over", child.name, exc)
        finally:
            self._recycling.discard(child.name)
            lane.wake.set()

    # Asked each round, not when a child starts: under a limit smaller than a fresh child, a report at
    # start would recycle every child before its first send, and nothing would ever go out.
    async def _ask_usage(self, task):
        if task.running:
            with contextlib.suppress(RelieveError):
                await task.send("usage")

    async def _usage_loop(self):
        while not self._stopping.is_set():
            for lane in self.lanes.values():
                for child in lane.pool.tasks.values():
                    await self._ask_usage(child)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.options.usage_interval)

    # sweeping -----------------------------------------------------------------

    async def _sweep_loop(self):
        while not self._stopping.is_set():
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep failed; trying again in %.0fs", self.options.sweep_interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.options.sweep_interval)

    async def sweep(self):
        """Take in READY rows nobody here has: left by a crash, a down master, a lost ack or a retry.

        First the rows of masters that stopped beating are taken over, and those of a master known
        to be dead (its lock beside the socket was left held by nobody); with SQLite's lock, those
        of any other master, none of which can be alive. The heartbeat renews this one's leases.
        """
        exclusive = self.lock is not None
        known, gone = set(self._known), set(self._gone)
        await self.recorder.submit(taskstore.take_back, known, self.owner, exclusive, gone)
        rows = await self.recorder.submit(taskstore.waiting, set(self._known))
        found = 0
        for task_id, queue, priority, delay, enqueued in rows:
            if queue not in self.lanes:
                if queue not in self._unserved:
                    self._unserved.add(queue)
                    log.warning("tasks wait in queue %r, which this master does not serve", queue)
                continue
            found += self.enqueue(task_id, queue, priority, delay, at=enqueued.timestamp() + delay)
        if found:
            log.info("sweep: %d waiting tasks picked up", found)
        return found

    # wake-ups from other hosts ----------------------------------------------------

    def _on_notify(self, queue, task_id, hints):
        """PostgreSQL told every master of a committed row; the claim decides which one runs it."""
        if self._stopping.is_set():
            return
        try:
            self.handle_submit(task_id, queue, **hints)
        except (TypeError, ValueError) as exc:
            log.warning("ignoring a notification for task %s: %s", task_id, exc)

    def _on_listening(self):
        """(Re)connected to LISTEN: what was announced while deaf waits for a sweep, so sweep now."""
        if not self._stopping.is_set():
            self._spawn(self.sweep())

    # operations of the socket protocol -----------------------------------------

    def handle_ping(self):
        queues = {name: len(lane.pool.strategy.tasks) for name, lane in self.lanes.items()}
        return {"pid": os.getpid(), "workers": sum(queues.values()), "queues": queues}

    def handle_submit(self, id, queue="default", priority=0, run_after=None):
        if not isinstance(id, int) or isinstance(id, bool) or not 1 <= id < 2**63:  # a database's bigint
            raise ValueError(f"id must be a positive 64-bit integer, got {id!r:.50}")
        if not isinstance(queue, str) or queue not in self.lanes:
            raise ValueError(f"this master serves no queue {queue!r:.100}; it serves {sorted(self.lanes)}")
        if not isinstance(priority, int) or isinstance(priority, bool) or abs(priority) > MAX_PRIORITY:
            raise ValueError(f"priority must be a whole number from -100 to 100, got {priority!r:.50}")
        if run_after is not None and (
            not isinstance(run_after, int | float)
            or isinstance(run_after, bool)
            or not math.isfinite(run_after)
        ):
            raise ValueError(f"run_after must be a Unix time or null, got {run_after!r:.50}")
        if self._stopping.is_set():
            raise ValueError("the master is stopping; the sweep of the next start will run it")
        now = time.time()
        delay = max(run_after - now, 0.0) if run_after is not None else 0.0
        self.enqueue(id, queue, priority, delay, at=run_after if run_after is not None else now)
        return {"queued": id}

    def handle_status(self):
        return of_master(self)

    def handle_reload(self):
        """Like SIGHUP: replace the children one at a time, each after its current send."""
        self.reloader.request("asked over the socket")
        return {"reloading": True}


def _error(kind, message):
    return {
        "exception_class_path": f"{kind.__module__}.{kind.__qualname__}",
        "message": message,
        "traceback": "",
    }


def run(options):
    """Run a master until it is told to stop; raises StartupError when it cannot start."""
    asyncio.run(Master(options).run())
