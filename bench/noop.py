"""What the pool benchmark calls: ``Noop`` for our CallableTask, ``noop`` for the executors."""


def noop():
    return None


class Noop:
    def noop(self):
        return None

    async def anoop(self):
        """The same on the child's event loop, without the hop to its lane thread."""
        return None
