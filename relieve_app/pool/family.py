"""A child's whole family: every process it started, so none outlives it.

Each child leads a session and a process group of its own (``start_new_session``). What it starts
stays in both unless it leaves them, and stays its descendant until it dies. Signalling the
child alone would leave its grandchildren running, re-parented to pid 1, after a timeout, a
kill, a recycle or a stop; ``signal_family`` reaches them all. Linux's ``/proc`` finds the ones
that left the group; elsewhere the process group is signalled.
"""

import contextlib
import os
import signal
from pathlib import Path

PROC = Path("/proc")


def signal_family(leader, sig, *, reaped=False):
    """Send ``sig`` to ``leader``, its session, process group and descendants; returns the pids.

    Once ``leader`` is ``reaped`` only its group and session are sought: their id stays taken while
    a member lives, so it names no other process, while the bare pid may already be another's.
    """
    members = members_of(leader, reaped=reaped)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader, sig)
    for pid in members - {os.getpid()}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    return members


def members_of(leader, *, reaped=False):
    """Pids in ``leader``'s session or group and their descendants; ``leader``'s own unless reaped."""
    table = _process_table()
    found = {
        pid
        for pid, (_ppid, pgid, sid) in table.items()
        if leader in (pgid, sid) or (pid == leader and not reaped)
    }
    children = {}
    for pid, (ppid, _pgid, _sid) in table.items():
        children.setdefault(ppid, []).append(pid)
    pending = list(found)
    while pending:
        for child in children.get(pending.pop(), ()):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def _process_table():
    """pid -> (ppid, pgid, sid) of every process, read from /proc; empty where there is none."""
    table = {}
    if not PROC.is_dir():
        return table
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we read
        # The command name, in parentheses, may hold spaces: the fields that matter follow the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 3 and fields[0] != "Z":
            table[int(entry.name)] = (int(fields[1]), int(fields[2]), int(fields[3]))
    return table


def clear_away(leader):
    """SIGKILL what is left of a reaped ``leader``'s family: nothing it started outlives it."""
    return signal_family(leader, signal.SIGKILL, reaped=True)
