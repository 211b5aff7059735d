"""Strategies: which running task gets the next call. One instance per worker, never shared."""

from .errors import NoTaskAvailable


class Strategy:
    def __init__(self):
        self.tasks = []
        self._turn = 0

    def add(self, task):
        if task not in self.tasks:
            self.tasks.append(task)

    def remove(self, task):
        if task in self.tasks:
            self.tasks.remove(task)

    def next(self):
        raise NotImplementedError

    def _check(self):
        if not self.tasks:
            raise NoTaskAvailable("no running task to dispatch to")


class RoundRobinStrategy(Strategy):
    """Each running task in turn."""

    def next(self):
        self._check()
        task = self.tasks[self._turn % len(self.tasks)]
        self._turn += 1
        return task


class WeightedStrategy(Strategy):
    """The task with the fewest calls in flight (sent and not yet finished); ties in turn."""

    def next(self):
        self._check()
        count = len(self.tasks)
        start = self._turn % count
        best = None
        for offset in range(count):
            task = self.tasks[(start + offset) % count]
            if best is None or task.in_flight < best.in_flight:
                best = task
                if task.in_flight == 0:
                    break
        self._turn = self.tasks.index(best) + 1
        return best
