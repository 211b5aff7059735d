"""relieve: child processes as tasks, workers that manage them, and an event channel between.

A Python port of the Node.js library relieve. asyncio-native and free of Django.
"""

from .channel import Channel, ChannelClosed
from .errors import BootError, NoTaskAvailable, NotRunning, RelieveError, RemoteError, TaskExited
from .interfaces import Logger
from .strategies import RoundRobinStrategy, WeightedStrategy
from .tasks import CallableTask, ForkTask, ScriptTask
from .workers import CloudWorker, QueueWorker, Worker

__all__ = [
    "BootError",
    "CallableTask",
    "Channel",
    "ChannelClosed",
    "CloudWorker",
    "ForkTask",
    "Logger",
    "NoTaskAvailable",
    "NotRunning",
    "QueueWorker",
    "RelieveError",
    "RemoteError",
    "RoundRobinStrategy",
    "ScriptTask",
    "TaskExited",
    "WeightedStrategy",
    "Worker",
]
