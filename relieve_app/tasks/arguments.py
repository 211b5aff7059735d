"""What ``enqueue()`` accepts as a task's arguments: only what every part after it can carry.

The row is JSON in SQLite or PostgreSQL, and the job crosses to a child in one frame of
``relieve_app.pool.framing``. Anything one of them would refuse later, after the row exists, is
refused here instead, naming the argument: a task the master can never hand to a child must not
be stored. ``check`` returns the arguments as the child will get them (tuples become lists).
"""

import json
import re

from django.tasks.exceptions import InvalidTask

from relieve_app.conf import app_settings

MAX_DEPTH = 200  # lists and dicts inside each other; far beyond real data, far below a RecursionError
LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # a str may hold one; UTF-8 (and so the socket) cannot
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def check(task, args, kwargs):
    """``(args, kwargs)`` as stored and sent, or InvalidTask saying which argument and why."""
    for key in kwargs:
        if not isinstance(key, str):
            _refuse(task, f"keyword {key!r}", f"is a {type(key).__name__}; keyword names are strings")
    text = _encoded(args, kwargs)
    if text is None:
        _refuse_the_first(task, args, kwargs)
    size = len(text) if text.isascii() else len(text.encode())
    limit = app_settings.RELIEVE_MAX_ARGS_BYTES
    if size > limit:
        raise InvalidTask(
            f"{task.module_path}: the arguments take {size} bytes as JSON, over RELIEVE_MAX_ARGS_BYTES "
            f"({limit}); pass an id or a path, and let the task read the rest"
        )
    # Tuples become lists, as they will come back from the database.
    args, kwargs = json.loads(text)
    return args, kwargs


def _encoded(args, kwargs):
    """All the arguments as one JSON text, or None when one of them cannot be carried: one walk and
    one encoding for all, as most calls refuse nothing; which one is at fault is looked for after."""
    if any(_problem(value) for value in (*args, *kwargs.values())):
        return None
    try:
        return _ENCODER.encode([args, kwargs])
    except (TypeError, ValueError):
        return None


def _refuse_the_first(task, args, kwargs):
    """InvalidTask naming the first argument that cannot be carried, and why."""
    for where, value in [*((f"argument {n}", a) for n, a in enumerate(args)), *kwargs.items()]:
        problem = _problem(value)
        if problem is None:
            try:
                _ENCODER.encode(value)
            except (TypeError, ValueError) as exc:
                problem = f"is not JSON ({exc}); pass ids, strings, numbers, lists and dicts, not objects"
        if problem is not None:
            _refuse(task, where, problem)
    raise AssertionError("the arguments were refused as a whole, and none of them alone")


def _refuse(task, where, problem):
    raise InvalidTask(f"{task.module_path}: {where} {problem}")


def _problem(value):
    """What in ``value`` no database or frame can carry, read without recursion; None when nothing."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            problem = _text_problem(item)
            if problem:
                return f"holds a string with {problem}"
        elif isinstance(item, list | tuple | dict):
            if depth >= MAX_DEPTH:
                return f"is nested deeper than {MAX_DEPTH} lists or dicts"
            if isinstance(item, dict):
                for key in item:
                    if not isinstance(key, str):
                        return f"holds a dict key {key!r} ({type(key).__name__}); JSON keys are strings"
                    problem = _text_problem(key)
                    if problem:
                        return f"holds a dict key with {problem}"
                item = item.values()
            pending.extend((inner, depth + 1) for inner in item)
    return None


def _text_problem(text):
    if "\x00" in text:
        return "a NUL character (\\x00), which PostgreSQL cannot store"
    surrogate = LONE_SURROGATE.search(text)
    if surrogate:
        return f"a lone surrogate ({surrogate.group()!r}), which is not UTF-8"
    return None
