"""Workers: a set of tasks handled as one."""

import asyncio
import signal

from .strategies import WeightedStrategy
from .tasks import ForkTask


class Worker:
    """Tasks by name; listeners added here reach every task, also the ones added later."""

    def __init__(self):
        self._tasks = {}
        self._listeners = []  # (method, event, fn)

    def add(self, task):
        self._check(task)
        if task.name in self._tasks:
            raise ValueError(f"this worker already has a task named {task.name!r}")
        for method, event, fn in self._listeners:
            getattr(task, method)(event, fn)
        self._tasks[task.name] = task
        return self

    def _check(self, task):
        if not hasattr(task, "on"):
            raise TypeError(f"{task!r} is not a task")

    async def remove(self, name):
        task = self.task(name)
        del self._tasks[name]
        for _method, event, fn in self._listeners:
            task.off(event, fn)
        if task.running:
            await task.stop()
        return task

    def task(self, name):
        try:
            return self._tasks[name]
        except KeyError:
            raise KeyError(f"no task named {name!r} in this worker") from None

    @property
    def tasks(self):
        return dict(self._tasks)

    def on(self, event, fn):
        return self._listen("on", event, fn)

    def once(self, event, fn):
        return self._listen("once", event, fn)

    def off(self, event, fn):
        self._listeners = [entry for entry in self._listeners if entry[1:] != (event, fn)]
        for task in self._tasks.values():
            task.off(event, fn)
        return self

    def _listen(self, method, event, fn):
        self._listeners.append((method, event, fn))
        for task in self._tasks.values():
            getattr(task, method)(event, fn)
        return self

    async def send(self, event, *args):
        """Send to every running task."""
        running = [task for task in self._tasks.values() if task.running]
        await asyncio.gather(*(task.send(event, *args) for task in running))
        return running

    async def start(self):
        await asyncio.gather(*(task.start() for task in self._tasks.values() if not task.running))
        return self

    async def drain(self, timeout=None, poll=0.01):
        """Wait until no running task holds a call; False when ``timeout`` seconds passed first.

        A ``call`` resolves once its child has it, so stopping right after would cut the calls
        the children still hold: drain first.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while any(task.running and task.in_flight for task in self._tasks.values()):
            if deadline is not None and loop.time() >= deadline:
                return False
            await asyncio.sleep(poll)
        return True

    async def kill(self, sig=signal.SIGTERM):
        """Stop every task for good; returns their exit codes by name."""
        tasks = list(self._tasks.values())
        codes = await asyncio.gather(*(task.stop(sig) for task in tasks))
        return {task.name: code for task, code in zip(tasks, codes, strict=True)}


class QueueWorker(Worker):
    """Tasks that exit when their job is done, at most ``concurrency`` alive at once."""

    def __init__(self, concurrency=1):
        super().__init__()
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency

    def _check(self, task):
        super()._check(task)
        if isinstance(task, ForkTask):
            raise TypeError("a QueueWorker starts its tasks itself; a ForkTask is already started")

    async def run(self, *names):
        """Run the named tasks (all by default); returns their exit codes in that order."""
        tasks = [self.task(name) for name in names] if names else list(self._tasks.values())
        slots = asyncio.Semaphore(self.concurrency)

        async def run_one(task):
            async with slots:
                try:
                    await task.start()
                except Exception as exc:
                    return getattr(exc, "code", None)
                return await task.wait()

        return list(await asyncio.gather(*(run_one(task) for task in tasks)))


class CloudWorker(Worker):
    """Long-running tasks; ``call``, ``get`` and ``send`` go to the one the strategy picks."""

    def __init__(self, strategy=None):
        super().__init__()
        self.strategy = strategy if strategy is not None else WeightedStrategy()
        self._membership = {}  # task name -> its start/exit listeners, taken back by remove

    def _check(self, task):
        super()._check(task)
        if isinstance(task, ForkTask):
            raise TypeError("a CloudWorker restarts its tasks; a ForkTask cannot be restarted")

    def add(self, task):
        super().add(task)
        listeners = {
            "start": lambda *_: self.strategy.add(task),
            "exit": lambda *_: self.strategy.remove(task),
        }
        for event, fn in listeners.items():
            task.on(event, fn)
        self._membership[task.name] = listeners
        if task.running:
            self.strategy.add(task)
        return self

    async def remove(self, name):
        task = self.task(name)
        for event, fn in self._membership.pop(name).items():
            task.off(event, fn)
        self.strategy.remove(task)
        return await super().remove(name)

    async def run(self):
        return await self.start()

    async def call(self, method, *args):
        """Call on the least busy task; returns that task."""
        return await self.strategy.next().call(method, *args)

    async def get(self, name, *args, timeout=None):
        return await self.strategy.next().get(name, *args, timeout=timeout)

    async def send(self, event, *args):
        """Send to the task the strategy picks; returns that task."""
        return await self.strategy.next().send(event, *args)
