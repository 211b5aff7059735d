"""One queue of the master: its CloudWorker of children and its heap of ready task ids.

Among the ids ready at the same time, the highest priority goes first, then the one due (or
enqueued) earliest. An id leaves the heap only when a child can take it, so a late, urgent task
overtakes everything still waiting.

A child runs one task at a time. While its tasks are short (``AHEAD``), it also holds the next
ones: they are claimed while the current task runs, so the child starts each as soon as it answers
instead of waiting for the database, and the claims of a busy lane reach the database in groups.
A child holds as many ahead as fit in ``AHEAD`` seconds of the lane's average task (at most
``MAX_AHEAD``): each was the most urgent when claimed, and a task that arrives more urgent still
waits for at most those ``AHEAD`` seconds of short tasks. The ids a child holds behind a task that
has run ``GIVE_BACK`` are given back to the heap (``overrun``): they go to the next free child
rather than wait for a task that turned out long. Tasks that take longer, or a lane with no
task finished yet, get no claim ahead: an id then waits in the heap for a free child, where urgency
still decides.

An id held ahead is not started yet: a cancel, a pause of the queue or the master's stop takes it
back before it reaches the child (``recall``, ``cancelled``), and its claim counts no attempt.

The heap holds a bounded number of ids (RELIEVE_MAX_HELD, ``queueing.py``): to take a more urgent
one when it is full, the least urgent go back to the table (``make_room``).
"""

import asyncio
import heapq
import itertools
import time

from relieve_app.pool import CloudWorker

AHEAD = 0.05  # seconds: a lane whose tasks take less than this on average claims ahead per child
MAX_AHEAD = 4  # ids a child holds beyond the one it runs, however short the tasks
SMOOTHING = 0.2  # weight of the newest run time in the lane's average
GIVE_BACK = 4 * AHEAD  # seconds a task runs before the ids held behind it go back to the heap: a
# margin over AHEAD, so that a short task slowed by a busy machine does not make them change child


class Lane:
    def __init__(self, name, size, max_calls=0, most=None):
        self.name = name
        self.size = size  # the children it starts with, and never goes below
        self.most = size if most is None else most  # the children it may grow to (scaling.py)
        self.max_calls = max_calls  # a child is recycled after this many tasks (0: never)
        self.done = {}  # child name -> the tasks it answered since it started
        self.pool = CloudWorker()
        self.busy = {}  # child name -> the task ids it holds: the one it runs, then the one ahead
        self.idle_since = {}  # child name -> when it last let go of its last id (monotonic)
        self.turns = {}  # child name -> the lock its held ids take in turn
        self.running = {}  # child name -> the task id handed to it, until it answers
        self.calls = {}  # child name -> the call of that task in it, once sent (pool.Call)
        self.cancelled = set()  # held ids, not started, whose cancel was asked: they never start
        self.recall = asyncio.Event()  # set when a cancel, a pause or the stop may hold back an id
        self.wake = asyncio.Event()
        self.average = None  # seconds a task of this lane took, smoothed; None before the first
        self._started = {}  # child name -> when its current task was handed to it (monotonic)
        self._last = {}  # child name -> (pid, died): the process of its last attempt, and whether
        # that attempt ended without an answer (the process died, or was killed at its timeout)
        self._heap = []
        self._order = itertools.count()  # ties keep arrival order
        self._floor = None  # no id in the heap is less urgent than this (priority, at) key
        self.paused = False  # a paused queue keeps its ids and hands none out (tasks/pausing.py)

    def __len__(self):
        return len(self._heap)

    def push(self, task_id, priority, at):
        """Ready now: ``priority`` higher first, then ``at`` (a Unix time) earlier first."""
        heapq.heappush(self._heap, (-priority, at, next(self._order), task_id))
        if self._floor is None or (-priority, at) > self._floor:
            self._floor = (-priority, at)
        self.wake.set()

    def make_room(self, priority, at, count):
        """Take out up to ``count`` of the least urgent ids, each less urgent than ``(priority, at)``,
        and return them; none when nothing held is less urgent. The heap, sorted, stays a heap."""
        key = (-priority, at)
        if not self._heap or self._floor is None or self._floor <= key:
            return []
        self._heap.sort()
        dropped = []
        while self._heap and len(dropped) < count and self._heap[-1][:2] > key:
            dropped.append(self._heap.pop()[-1])
        self._floor = self._heap[-1][:2] if self._heap else None
        self.cancelled.difference_update(dropped)
        return dropped

    def free_child(self):
        """A running child with nothing to do; else the one holding the fewest ids whose next task
        may be claimed now; or None. No child is handed more than its ``max_calls``."""
        ahead, fewest = None, self.depth()
        for child in self.pool.strategy.tasks:
            held = len(self.busy.get(child.name, ()))
            if not child.running or not self._has_room(child.name, held):
                continue
            if not held:
                return child
            if held < fewest and self._short(child.name):
                ahead, fewest = child, held
        return ahead

    def _has_room(self, name, held):
        """Whether a child holding ``held`` ids may take one more and stay within ``max_calls``:
        a task sent ahead may start in the child before the master hears the one before it end."""
        return not self.max_calls or self.done.get(name, 0) + held < self.max_calls

    def answered(self, child):
        """A task of ``child`` answered; returns how many have since it started."""
        self.done[child.name] = self.done.get(child.name, 0) + 1
        return self.done[child.name]

    def restarted(self, child):
        """A new process of ``child`` started: it has answered none."""
        self.done.pop(child.name, None)
        if child.name not in self.busy:
            self.idle_since[child.name] = time.monotonic()

    def forget(self, name):
        """A child stopped for good (scaling.py): nothing of it is kept."""
        for kept in (self.done, self.busy, self.idle_since, self.turns, self.running, self.calls, self._last):
            kept.pop(name, None)

    def depth(self):
        """How many ids a child may hold: the one it runs and those ahead, ``AHEAD`` seconds' worth."""
        if self.average is None or self.average >= AHEAD:
            return 1
        return 1 + min(MAX_AHEAD, max(1, int(AHEAD / max(self.average, 1e-6))))

    def covers(self, seconds):
        """Whether the ids a child holds ahead are ``seconds`` of work or more, by the average."""
        return self.average is not None and (self.depth() - 1) * self.average >= seconds

    def _short(self, name):
        """Whether this child's next task may be claimed ahead: the lane's tasks are short, and the
        one it runs is not an exception that has already run longer."""
        if self.average is None or self.average >= AHEAD:
            return False
        started = self._started.get(name)
        return started is None or time.monotonic() - started < AHEAD

    async def next(self, stopping):
        """Wait for a ready id and a child to take it; pair them, or None once ``stopping`` is set."""
        while not stopping.is_set():
            child = self.free_child() if self._heap and not self.paused else None
            if child is not None:
                task_id = heapq.heappop(self._heap)[-1]
                self.busy.setdefault(child.name, []).append(task_id)
                self.idle_since.pop(child.name, None)
                return task_id, child
            self.wake.clear()
            await self.wake.wait()
        return None

    def overrun(self, child):
        """Whether the task ``child`` runs has run ``GIVE_BACK`` seconds: the ids it holds behind
        that task go back to the heap."""
        started = self._started.get(child.name)
        return started is not None and time.monotonic() - started >= GIVE_BACK

    def longest_running(self):
        """Seconds the longest of the tasks its children run now has run; 0 when none runs."""
        now = time.monotonic()
        return max((now - started for started in self._started.values()), default=0.0)

    def holds_behind_overrun(self):
        """Whether a child holds ids behind a task that has run ``GIVE_BACK`` seconds."""
        return any(
            len(self.busy.get(child.name, ())) > 1 and self.overrun(child)
            for child in self.pool.strategy.tasks
        )

    def turn(self, child):
        """The lock a child's held ids take in turn: one task at a time in the child."""
        return self.turns.setdefault(child.name, asyncio.Lock())

    def holds(self, task_id):
        """The name of the child holding ``task_id``, running or ahead, or None."""
        return next((name for name, held in self.busy.items() if task_id in held), None)

    def started(self, child, task_id):
        self._started[child.name] = time.monotonic()
        self.running[child.name] = task_id

    def sent(self, child, call):
        """The call of the task ``child`` runs now: what a stop drops, or hands over with the child."""
        self.calls[child.name] = call

    def ran(self, child, seconds):
        """A task ran ``seconds`` in ``child``: the lane's average follows."""
        self._started.pop(child.name, None)
        self.running.pop(child.name, None)
        self.calls.pop(child.name, None)
        if self.average is None:
            self.average = seconds
        else:
            self.average += SMOOTHING * (seconds - self.average)

    def ended(self, child, pid, died):
        """The attempt in ``child`` (process ``pid``) ended: answered, or with no answer."""
        self._last[child.name] = (pid, died)

    def died_in(self, child, pid):
        """Whether process ``pid`` of ``child`` died in the attempt before: a call sent to it behind
        that attempt never started, since a child runs its calls one at a time, in order."""
        return self._last.get(child.name) == (pid, True)

    def release(self, child, task_id):
        held = self.busy.get(child.name, [])
        if task_id in held:
            held.remove(task_id)
        if not held and self.busy.pop(child.name, None) is not None:
            self.idle_since[child.name] = time.monotonic()
        self.wake.set()
