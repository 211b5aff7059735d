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
from dataclasses import dataclass

from . import recorder, wakeup
from .endpoint import Endpoint, StartupError
from .filelock import MasterLock
from .identity import MasterIdentity
from .listener import Listener
from .pool import BootError, CallableTask, CloudWorker, NoTaskAvailable, RelieveError, TaskExited
from .presence import Presence

log = logging.getLogger(__name__)

MAIL_SCRIPT = "relieve_app.mail:Mail"
MONITOR = "relieve_app.pool.containers.monitor"
QUEUE = "mail"


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
    host: str = ""  # the name this master registers under; empty: the machine's host name
    heartbeat: float = 5.0  # how often the master renews its lease
    lease: float = 30.0  # a master silent this long is gone, and what it held may be taken over
    lock_path: str | None = None  # SQLite: the file whose lock makes this the database's only master
    database: str = ""  # named in messages about the lock
    listen: dict | None = None  # PostgreSQL: parameters of the LISTEN connection for wake-ups

    def check(self):
        if self.workers < 1:
            raise StartupError(f"--workers must be at least 1 (got {self.workers})")
        if self.max_attempts < 1:
            raise StartupError(f"RELIEVE_MAX_ATTEMPTS must be at least 1 (got {self.max_attempts})")
        if self.heartbeat <= 0 or self.lease < 2 * self.heartbeat:
            raise StartupError(
                f"RELIEVE_LEASE ({self.lease:g}s) must be at least twice RELIEVE_HEARTBEAT "
                f"({self.heartbeat:g}s), which must be positive: one late beat must not lose the lease"
            )

    def retry_after(self, attempts):
        return min(self.retry_delay * 2 ** max(attempts - 1, 0), self.max_retry_delay)


class Master:
    def __init__(self, options):
        self.options = options
        self.pool = CloudWorker()
        self.recorder = recorder.Recorder()
        self.endpoint = Endpoint(options.socket_path, self, client_timeout=options.client_timeout)
        self.identity = MasterIdentity.current(options.host)
        self.presence = Presence(
            self.recorder,
            self.identity,
            lease=options.lease,
            interval=options.heartbeat,
            queues=[QUEUE],
            children=lambda: len(self.pool.strategy.tasks),
        )
        self.lock = MasterLock(options.lock_path, options.database) if options.lock_path else None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._queue = collections.deque()  # ids waiting for a child, oldest first
        self._known = set()  # ids queued, scheduled, or in a child: never handed out twice
        self._sending = set()
        self._timers = {}
        self._background = set()
        self._errors = {}  # outcome id -> last error payload reported by a child
        self._calls = collections.Counter()  # sends per child since it started
        self._recycling = set()

    # lifecycle ----------------------------------------------------------------

    async def run(self):
        """Start, serve until SIGTERM/SIGINT, stop gracefully."""
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        try:
            await self._stopping.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()

    async def start(self):
        self.options.check()
        self.endpoint.check()
        self.endpoint.claim()
        if self.lock is not None:
            self.lock.acquire(self.identity)
        self.recorder.start()
        try:
            await self.recorder.submit(recorder.check_schema)
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
        await self.presence.join()
        await self.endpoint.listen()
        log.info(
            "relieve master %s listening on %s with %d children",
            self.identity.id,
            self.options.socket_path,
            len(self.pool.tasks),
        )
        self._spawn(self._dispatch_loop())
        self._spawn(self._sweep_loop())
        self._spawn(self.presence.run(self._stopping))
        if self.options.listen is not None:
            channels = {wakeup.channel(QUEUE): QUEUE}
            self._spawn(Listener(self.options.listen, channels, self._on_notify).run())
        if self.options.max_memory:
            self._spawn(self._usage_loop())

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
        await self.presence.leave()
        await self.recorder.stop()
        if self.lock is not None:
            self.lock.release()
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
        task.on("restart", lambda: self._on_lifecycle(name, "restart", {"restarts": task.restarts + 1}))
        task.on("start", lambda _at: self._calls.pop(name, None))
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

    def enqueue(self, outcome_id):
        """Queue an id for a child unless this master already handles it."""
        if outcome_id in self._known:
            return False
        self._known.add(outcome_id)
        self._queue.append(outcome_id)
        self._wake.set()
        return True

    def _retry_later(self, outcome_id, delay):
        self._known.add(outcome_id)

        def due():
            self._timers.pop(outcome_id, None)
            self._known.discard(outcome_id)
            self.enqueue(outcome_id)

        self._timers[outcome_id] = asyncio.get_running_loop().call_later(delay, due)

    async def _dispatch_loop(self):
        """Hand queued ids out, at most one per running child at a time."""
        while not self._stopping.is_set():
            capacity = len(self.pool.strategy.tasks) - len(self._sending)
            if not self._queue or capacity <= 0:
                self._wake.clear()
                await self._wake.wait()
                continue
            outcome_id = self._queue.popleft()
            self._sending.add(outcome_id)
            self._spawn(self._deliver(outcome_id))

    async def _deliver(self, outcome_id):
        try:
            job = await self.recorder.submit(recorder.claim, outcome_id)
            if job is None:  # sent, failed or deleted meanwhile
                self._known.discard(outcome_id)
                return
            await self._send(job)
        except Exception:
            log.exception("dispatching outcome %s failed; it stays pending for the sweep", outcome_id)
            self._known.discard(outcome_id)
        finally:
            self._sending.discard(outcome_id)
            self._wake.set()

    async def _send(self, job):
        outcome_id = job["id"]
        try:
            task = self.pool.strategy.next()
        except NoTaskAvailable:
            self._requeue(outcome_id, "no child running")
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
            self.recorder.record(recorder.mark_sent, outcome_id, f"sent by {task.name}")
            log.info("outcome %s sent by %s (attempt %s)", outcome_id, task.name, job["attempt"])
            self._known.discard(outcome_id)
        else:
            self._failed(job, self._errors.pop(outcome_id, {"message": "the child reported a failure"}))

    def _requeue(self, outcome_id, reason):
        """No child could take the job: hand it out again shortly."""
        log.warning("outcome %s goes back to the queue: %s", outcome_id, reason)
        self._known.discard(outcome_id)
        self._retry_later(outcome_id, 0.1)

    def _failed(self, job, payload):
        outcome_id, attempts = job["id"], job["attempt"]
        code = payload.get("code")
        error = f"{payload.get('message', '')}" + (f" (SMTP {code})" if code else "")
        final = attempts >= self.options.max_attempts
        self.recorder.record(recorder.mark_error, outcome_id, error, final)
        self._known.discard(outcome_id)
        if final:
            log.warning("outcome %s failed after %d attempts: %s", outcome_id, attempts, error)
        else:
            self._retry_later(outcome_id, self.options.retry_after(attempts))

    # recycling: a child that has done enough, or grown too big, is replaced when idle ---------

    def _count_call(self, task):
        self._calls[task.name] += 1
        if self.options.max_calls and self._calls[task.name] >= self.options.max_calls:
            self.recycle(task, f"{self._calls[task.name]} sends done")

    def _on_usage(self, task, usage):
        memory = usage.get("memory", 0) if isinstance(usage, dict) else 0
        if self.options.max_memory and isinstance(memory, int) and memory > self.options.max_memory:
            self.recycle(
                task, f"resident memory {memory / 2**20:.0f} MiB over {self.options.max_memory / 2**20:g} MiB"
            )

    def recycle(self, task, reason):
        """Take the child out of rotation now; restart it once its sends are done."""
        if task.name in self._recycling or self._stopping.is_set():
            return
        self._recycling.add(task.name)
        self.pool.strategy.remove(task)
        self._spawn(self._recycle(task, reason))

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

    async def _usage_loop(self):
        while not self._stopping.is_set():
            for task in self.pool.tasks.values():
                if task.running:
                    with contextlib.suppress(RelieveError):
                        await task.send("usage")
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
        rows = await self.recorder.submit(recorder.pending, set(self._known), stale_after)
        found = 0
        for outcome_id, status, attempts, idle in rows:
            if outcome_id in self._known:
                continue
            found += 1
            if status == "retrying":
                self._retry_later(outcome_id, max(self.options.retry_after(attempts) - idle, 0.0))
            else:
                self.enqueue(outcome_id)
        if found:
            log.info("sweep: %d pending messages picked up", found)
        return found

    def _on_notify(self, queue, row_id):
        """Another host enqueued: PostgreSQL told every master; claiming decides who sends."""
        if not self._stopping.is_set():
            self.enqueue(row_id)

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
        return {
            "pid": os.getpid(),
            "master": self.identity.id,
            "queued": len(self._queue),
            "sending": len(self._sending),
            "retrying": len(self._timers),
            "children": [
                {
                    "name": task.name,
                    "pid": task.pid,
                    "running": task.running,
                    "in_flight": task.in_flight,
                    "restarts": task.restarts,
                }
                for task in self.pool.tasks.values()
            ],
        }


def run(options):
    """Run a master until it is told to stop; raises StartupError when it cannot start."""
    asyncio.run(Master(options).run())
