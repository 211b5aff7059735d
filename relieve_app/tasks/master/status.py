"""The master's own view of itself: what the socket's ``status`` operation answers.

``relieve_app/monitor/status.py`` asks for it over the socket and adds what the database knows.
"""

import os
import socket
import time


def of_master(master, now=None):
    """The master's own view: host, pid, uptime, every queue, and every child."""
    now = time.time() if now is None else now
    lanes = list(master.lanes.values())
    children = [child_state(master, lane, task, now) for lane in lanes for task in lane.pool.tasks.values()]
    queues = [
        {
            "name": lane.name,
            "children": len(lane.pool.tasks),
            "scale": [lane.size, lane.most],  # the children it starts with, and the most it grows to
            "available": len(lane.pool.strategy.tasks),
            "queued": len(lane),
            "more_in_table": lane.name in master._left,  # past RELIEVE_MAX_HELD: the rest wait there
            "sending": len(lane.busy),
            "paused": lane.name in master.paused,
        }
        for lane in lanes
    ]
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "owner": master.owner,
        "started_at": master.started_at,
        "uptime": now - master.started_at if master.started_at else 0.0,
        "reloading": master.reloader.busy if master.reloader else False,
        "queues": queues,
        # Totals over every queue, as the first versions of this operation had them.
        "queued": sum(queue["queued"] for queue in queues),
        "sending": len(master._running),
        # Held on timers until due, within two sweeps: a retry's delay, a run_after, a rate's wait.
        "retrying": len(master._timers),
        "settling": len(master._settling),  # outcomes whose write is not committed yet
        "children": children,
    }


def child_state(master, lane, task, now):
    usage = master.usage.of(task.name, task.pid) if task.running else None
    return {
        "name": task.name,
        "queue": lane.name,
        "pid": task.pid if task.running else None,
        "state": _state(master, task),
        "running": task.running,
        "in_flight": task.in_flight,
        "done": lane.done.get(task.name, 0),
        "restarts": task.restarts,
        "cpu_percent": usage["cpu_percent"] if usage else None,
        "memory": usage["memory"] if usage else None,
        "uptime": now - task.started_at if task.running and task.started_at else None,
    }


def _state(master, task):
    if task.running:
        if task.name in master._retiring:
            return "stopping"  # its queue shrinks (scaling.py)
        return "recycling" if task.name in master._recycling else "running"
    return "stopped" if master._stopping.is_set() else "restarting"
