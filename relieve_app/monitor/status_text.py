"""The pool's state as lines of text for a terminal: what `relievestatus` prints."""

COLUMNS = [
    ("CHILD", "name"),
    ("PID", "pid"),
    ("STATE", "state"),
    ("IN FLIGHT", "in_flight"),
    ("DONE", "done"),
    ("RESTARTS", "restarts"),
    ("CPU %", "cpu_percent"),
    ("MEMORY", "memory"),
    ("UPTIME", "uptime"),
]


def duration(seconds):
    """3d04h, 2h05m, 4m07s, 12s: the two largest units, like `ps` and `top`."""
    if seconds is None:
        return "-"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def size(memory):
    return "-" if memory is None else f"{memory / 2**20:.1f} MiB"


def cell(child, key):
    value = child.get(key)
    if key == "memory":
        return size(value)
    if key == "uptime":
        return duration(value)
    if key == "cpu_percent":
        return "-" if value is None else f"{value:.1f}"
    return "-" if value is None else str(value)


def table(children):
    rows = [[title for title, _key in COLUMNS]]
    rows += [[cell(child, key) for _title, key in COLUMNS] for child in children]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return [
        "  " + "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


MORE = " here and more in the database (RELIEVE_MAX_HELD)"
# The master's timers (its status's "retrying"): tasks due within two sweeps, for any of these reasons.
WAITING_FOR_THEIR_TIME = "waiting for their time (a retry's delay, run_after or a rate limit)"


def render(state, socket_path):
    lines = []
    paused = set(state.get("paused") or ())
    if not state["masters"]:
        lines.append(f"no relieve master answers on {socket_path}: {_reason(state['error'], socket_path)}")
    if paused:
        lines.append(f"paused queues: {', '.join(sorted(paused))} (relievequeue resume NAME)")
    for master in state["masters"]:
        lines.append(
            f"master pid {master['pid']} on {master['host']}, up {duration(master['uptime'])}"
            + (", reloading its children" if master.get("reloading") else "")
        )
        for queue in master["queues"]:
            state_word = "paused, " if queue.get("paused") or queue["name"] in paused else ""
            lines.append(
                f"queue {queue['name']}: {state_word}{_count(queue['children'], 'child', 'children')}"
                f"{_range(queue)} "
                f"({queue['available']} taking work), "
                f"{queue['queued']} queued{MORE if queue.get('more_in_table') else ''}, "
                f"{queue['sending']} running"
            )
        settling = master["settling"]
        lines.append(f"{master['retrying']} {WAITING_FOR_THEIR_TIME}, {settling} outcomes being recorded")
        lines += table(master["children"])
    lines += tasks(state)
    lines.append("")
    if state["outcomes"] is None:
        lines.append(f"messages: unknown ({state['error']})")
        return lines
    lines.append("messages: " + ", ".join(f"{count} {status}" for status, count in state["outcomes"].items()))
    recent = state["recent"]
    lines.append(
        f"last minute: {recent['minute']['delivered']} delivered, {recent['minute']['failed']} failed; "
        f"last hour: {recent['hour']['delivered']} delivered, {recent['hour']['failed']} failed"
    )
    return lines


def _count(number, one, many):
    return f"{number} {one if number == 1 else many}"


def _range(queue):
    """After the count of a queue that grows and shrinks within a range of children: "of 4-16"."""
    least, most = queue.get("scale") or (None, None)
    return f" of {least}-{most}" if most is not None and most > least else ""


def tasks(state):
    """Running tasks with their progress, and how full each bounded queue is."""
    lines = []
    for queue, full in (state.get("fullness") or {}).items():
        lines.append(f"queue {queue}: {full['ready']} of at most {full['limit']} ready (RELIEVE_MAX_READY)")
    running = state.get("running_tasks") or []
    if running:
        lines.append(f"running tasks ({len(running)}):")
    for task in running:
        done = task["progress"]
        held = f" ({task['detached']})" if task.get("detached") else ""
        lines.append(f"  #{task['id']} {task['task']} on {task['queue']}{held}: {_progress(done)}")
    return lines


def _progress(done):
    if done is None:
        return "no progress reported"
    if done["total"]:
        text = f"{done['done']:g} of {done['total']:g} ({min(done['done'] / done['total'], 1):.0%})"
    else:
        text = f"{done['done']:g} done"
    return text + (f": {done['note']}" if done["note"] else "")


def _reason(error, socket_path):
    """The client's error without the socket path the line already gave: "[Errno 2] No such file…"."""
    reason = (error or "no answer").replace(f" at {socket_path}", "")
    return reason.removeprefix("cannot reach the relieve master: ")
