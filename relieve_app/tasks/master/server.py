"""The relieve master: one CloudWorker of children per queue, its Unix socket, and the recorder.

The socket (``endpoint.py``) turns each request ``{"op": <name>, "args": {...}}`` into a
call of a ``handle_<op>`` method (``operations.py``).

``Master`` is its lifecycle (here) and the parts its other modules hold, each on the same state:
``children.py``, ``queueing.py``, ``dispatching.py``, ``recycling.py``, ``scaling.py``, ``sweeping.py``
(with the wake-ups from other hosts) and ``operations.py``.

Every task is run at least once. A task is claimed in the database (READY -> RUNNING, owned
by this master) before a child gets it; whatever interrupts it afterwards leaves the row
behind, and the start-up and periodic sweeps hand it out again. Only the recorder writes
task state; ``taskstore.py`` holds those writes.

A graceful stop (RELIEVE_FAILSAFE, the default) cuts no task short: the children in a task are
let go to finish it and record its end themselves (``tasks/failsafe.py``), each holding its row
under an id of its own; the master stops its idle children and exits without waiting for them.
"""

import asyncio
import contextlib
import logging
import signal
import time
from collections import Counter

from django.db import connections

from relieve_app import pool
from relieve_app.pool import BootError, RelieveError, warm_up
from relieve_app.sqlite3 import base as sqlite3_base
from relieve_app.tasks import lazy_imports, owners
from relieve_app.tasks.master import controlling, reloading, scheduling, wakeup
from relieve_app.tasks.master.children import Children, preloads
from relieve_app.tasks.master.dispatching import Dispatching
from relieve_app.tasks.master.endpoint import Endpoint
from relieve_app.tasks.master.errors import StartupError
from relieve_app.tasks.master.holding import Holding
from relieve_app.tasks.master.identity import MasterIdentity
from relieve_app.tasks.master.lanes import Lane
from relieve_app.tasks.master.locks import MasterLock, socket_refusal, sqlite_refusal
from relieve_app.tasks.master.operations import Operations
from relieve_app.tasks.master.options import Options
from relieve_app.tasks.master.presence import Presence
from relieve_app.tasks.master.queueing import Queueing
from relieve_app.tasks.master.recycling import Recycling
from relieve_app.tasks.master.scaling import Scaling
from relieve_app.tasks.master.sweeping import Sweeping
from relieve_app.tasks.master.usage import UsageBook
from relieve_app.tasks.store import leases, recorder
from relieve_app.tasks.store.ledger import Ledger

log = logging.getLogger(__name__)

__all__ = ["Master", "Options", "StartupError", "run"]

DROP_TIMEOUT = 2.0  # seconds a child gets at the stop to say whether it started its task


class Master(Children, Queueing, Dispatching, Holding, Recycling, Scaling, Sweeping, Operations):
    """One master: its state, and how it starts and stops."""

    def __init__(self, options, *, preforked=None):
        self.options = options
        self.preforked = preforked  # the zygote run() forked before the loop; used by the first spawn
        self.identity = MasterIdentity.current(options.host)
        self.owner = self.identity.id
        self.lanes = {
            name: Lane(name, least, options.max_calls, most)
            for name, (least, most) in options.sizes().items()
        }
        self.recorder = recorder.Recorder()
        self.lease = options.lease
        self.ledger = Ledger(
            self.recorder, self.owner, self.lease, durable=options.durable, may_gather=self._may_gather
        )
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
        self._left = set()  # queues whose lane was full: READY rows of theirs wait in the table
        self._refill = asyncio.Event()  # set when such a lane is down to half: sweep now (queueing.py)
        self._running = set()  # claimed, in a child, or its answer being handled
        self.claiming = set()  # ids whose claim is on its way to the database
        self.ahead = set()  # claimed, on their way to a child or waiting there: not known started yet
        self._settling = {}  # its attempt's outcome handed to the ledger, not yet committed: id -> write
        self._timers = {}  # id -> (queue, timer): due within options.hold_ahead (queueing.py)
        self._deferred = Counter()  # queue -> its ids on timers, at most options.max_held
        self._capped = {}  # task path -> ids its concurrency cap holds back (holding.py)
        self._background = set()
        self._recycling = set()  # children out of rotation until idle, to be restarted or stopped
        self._retiring = set()  # ... of them, those to be stopped for good: their queue shrinks
        self._headroom = {}  # queue -> what its children and the cores did while it needed more (scaling.py)
        self.usage = UsageBook()
        self.reloader = reloading.Reloader(self)
        self.zygote = None  # forks the children when options.preload (children.py)
        self.started_at = None
        self._unserved = set()  # queues found in the table that this master has no children for
        self.paused = set()  # queues paused in the database, as last read (controlling.py)
        self.cancelling = set()  # ids whose child was killed because the task was cancelled

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
            await self._stop_zygote()
            await self.recorder.stop()
            raise StartupError(f"the task {self.options.script} could not start: {exc.reason}") from exc
        await self.presence.join()
        await self.endpoint.listen()
        log.info(
            "relieve master %s listening on %s; children per queue: %s",
            self.owner,
            self.options.socket_path,
            ", ".join(
                f"{name}={lane.size}" + (f"-{lane.most}" if lane.most > lane.size else "")
                for name, lane in self.lanes.items()
            ),
        )
        self.started_at = time.time()
        for lane in self.lanes.values():
            self._spawn(self._dispatch_loop(lane))
            self._spawn(self._give_back_loop(lane))
            if lane.most > lane.size:
                self._spawn(self._scale_loop(lane))
        self._spawn(self._sweep_loop())
        self._spawn(self.presence.run(self._stopping))
        self._spawn(controlling.control_loop(self, self._stopping))
        self._spawn(scheduling.tick_loop(self, self._stopping))
        if self.options.listen is not None:
            from relieve_app.tasks.master.listener import (
                Listener,  # psycopg: installed where the database is PostgreSQL
            )

            channels = {wakeup.channel(name): name for name in self.lanes}
            listener = Listener(
                self.options.listen,
                channels,
                self._on_notify,
                self._on_listening,
                on_sweep=self._on_sweep_notice,
            )
            self._spawn(listener.run())
        self._spawn(self._usage_loop())
        self._spawn(self.reloader.run())
        if self.options.reload_root:
            self._spawn(reloading.watch(self.reloader, reloading.StatWatcher(self.options.reload_root)))

    async def stop(self):
        if self.options.failsafe:
            log.info("stopping: no new tasks; the %d running finish in their children", len(self._running))
        else:
            log.info(
                "stopping: no new tasks; waiting up to %.0fs for %d running",
                self.options.grace,
                len(self._running),
            )
        self._stopping.set()
        self.endpoint.close()
        for _queue, timer in self._timers.values():
            timer.cancel()
        for lane in self.lanes.values():
            lane.wake.set()
            lane.recall.set()  # ids claimed and not started go back READY now
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.grace
        if self.options.failsafe:
            await self._hand_over(max(deadline - loop.time(), 1.0))
        while self._running and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._kill_children()
        await self._stop_zygote()
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

    async def _hand_over(self, timeout):
        """Let each child in a task go on with it, unwaited for; its row moves to the child's own
        id first, so the release at ``_leave`` leaves it alone and no master takes it but after
        its lease. The child, hearing its channel close, moves it the same way (``failsafe.py``).

        Claims on their way are waited for (one back after the stop is never sent), and tasks sent
        ahead are dropped in their child or found started there. The call of each task a child
        runs is then dropped too: sent, it may still wait in the child, which would exit without
        starting it once let go, leaving its row held for a lease and run again. Dropped, it is
        READY at once; found started, its child is let go, unless its answer has come, whose
        outcome the master records."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self.claiming or self.ahead) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        in_children = [
            (lane, name, task_id)
            for lane in self.lanes.values()
            for name, task_id in lane.running.items()
            if task_id not in self.cancelling and name in lane.calls
        ]
        started = await asyncio.gather(
            *(self._started_in(lane, name) for lane, name, _task_id in in_children)
        )
        handed = {}
        for (lane, name, task_id), keeps in zip(in_children, started, strict=True):
            child = lane.pool.tasks.get(name)
            if not keeps or child is None or not child.running or not child.in_flight:
                continue
            child.channel.read_waiting()  # an answer already sent is the master's to record
            call = lane.calls.get(name)
            if call is None or call.future.done():
                continue
            pid = child.pid
            if child.let_go():
                handed[task_id] = owners.detached_owner(self.owner, pid)
                log.info("task %s finishes in child %s (pid %s), let go", task_id, name, pid)
        if not handed:
            return
        try:
            args = (handed, self.owner, self.lease)
            moved = await asyncio.wait_for(self.recorder.submit(leases.hand_over, *args), timeout)
        except Exception as exc:
            log.warning(
                "could not hand %d tasks over to their children (%s); they move there themselves",
                len(handed),
                exc,
            )
        else:
            if moved < len(handed):
                log.info("%d of %d tasks let go had ended already", len(handed) - moved, len(handed))

    async def _started_in(self, lane, name):
        """Whether the call of the task child ``name`` runs has started there and runs on: False
        once dropped before it started (``_run`` gives it back), or its child is gone."""
        child, call = lane.pool.tasks.get(name), lane.calls.get(name)
        if child is None or call is None:
            return False
        try:
            return not await asyncio.wait_for(child.drop(call), DROP_TIMEOUT)
        except TimeoutError:
            return True  # a child too busy to answer is in its task
        except RelieveError:
            return False

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

    async def _stop_zygote(self):
        """After the children: a child still running (one left to outlive the master) keeps running."""
        if self.zygote is not None:
            await self.zygote.stop()

    @property
    def stopping(self):
        return self._stopping.is_set()

    def _spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task


def run(options):
    """Run a master until it is told to stop; raises StartupError when it cannot start."""
    sqlite3_base.yield_to_requests()  # on SQLite the requests go first to the write lock, children too
    preforked = fork_zygote(preloads(options.script), options.immortal) if options.preload else None
    try:
        asyncio.run(Master(options, preforked=preforked).run())
    finally:
        if preforked is not None and not preforked.attached:
            preforked.discard()


def fork_zygote(preload, immortal=True):
    """The zygote, forked from this process now, while it is one thread with Django loaded and no
    event loop: the zygote and the children it forks share these pages instead of each loading
    their own copy. What Django imports only on first use is imported first (``lazy_imports.py``), and
    the warm-ups run (``relieve_app.pool.warm_up``). No database connection may be open across the
    fork (the zygote would close it as its own, ending this process's session), so any is closed then."""
    lazy_imports.import_ahead()
    warm_up.run()
    connections.close_all()
    return pool.fork_zygote(preload, immortal)
