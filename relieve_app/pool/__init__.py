"""relieve: child processes as tasks, workers that manage them, and an event channel between.

A Python port of the Node.js library relieve. asyncio-native and free of Django.
"""

import importlib

# Each public name and the module it lives in. They are imported on first use (PEP 562), so a
# process that needs one module (the renderer needs only framing) does not load asyncio and the rest.
_HOMES = {
    "Channel": "channel",
    "ChannelClosed": "channel",
    "BootError": "errors",
    "CallDropped": "errors",
    "NoTaskAvailable": "errors",
    "NotRunning": "errors",
    "RelieveError": "errors",
    "RemoteError": "errors",
    "TaskExited": "errors",
    "Logger": "interfaces",
    "RoundRobinStrategy": "strategies",
    "WeightedStrategy": "strategies",
    "CallableTask": "tasks",
    "ForkTask": "tasks",
    "ScriptTask": "tasks",
    "CloudWorker": "workers",
    "QueueWorker": "workers",
    "Worker": "workers",
    "Zygote": "zygote_handle",
    "fork_zygote": "zygote_handle",
    "ZygoteUnavailable": "zygote_handle",
}
__all__ = sorted(_HOMES)


def __getattr__(name):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_HOMES})
