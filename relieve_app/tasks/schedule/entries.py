"""The entries of RELIEVE_SCHEDULE, read and checked: ``{name: {"task", "cron" | "every", ...}}``.

``problems`` names everything wrong with one entry (the system checks show it); ``load`` returns
the entries that have nothing wrong, so one bad entry never stops the others.
"""

import json
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.tasks import Task
from django.utils.module_loading import import_string

from relieve_app.conf import app_settings
from relieve_app.tasks.schedule.rules import Cron, Every, RuleError

KEYS = {"task", "cron", "every", "args", "kwargs", "timezone", "enabled", "catch_up"}
CATCH_UP_LIMIT = 100  # with catch_up, at most this many missed slots run, the latest ones


@dataclass(frozen=True)
class Entry:
    name: str
    task_path: str
    rule: object  # Cron or Every
    zone: str
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    enabled: bool = True
    catch_up: bool = False

    @property
    def task(self):
        return import_string(self.task_path)

    @property
    def limit(self):
        """How many due slots one tick may enqueue: the latest alone, unless catching up."""
        return CATCH_UP_LIMIT if self.catch_up else 1


def configured():
    return app_settings.RELIEVE_SCHEDULE or {}


def load():
    """Every valid entry, by name; none when the setting is not a dict (its check says so)."""
    entries = {}
    schedule = configured()
    for name, spec in schedule.items() if isinstance(schedule, dict) else ():
        if not problems(name, spec):
            entries[name] = build(name, spec)
    return entries


def build(name, spec):
    zone = spec.get("timezone") or settings.TIME_ZONE
    rule = Cron(spec["cron"], ZoneInfo(zone)) if "cron" in spec else Every(spec["every"])
    return Entry(
        name=name,
        task_path=spec["task"],
        rule=rule,
        zone=zone,
        args=list(spec.get("args", [])),
        kwargs=dict(spec.get("kwargs", {})),
        enabled=spec.get("enabled", True),
        catch_up=spec.get("catch_up", False),
    )


def problems(name, spec):
    """What is wrong with one entry, as sentences; empty when it can run."""
    if not isinstance(name, str) or not name or len(name) > 100:
        return [f"the name {name!r} must be a string of 1 to 100 characters"]
    if not isinstance(spec, dict):
        return [f"must be a dict like {{'task': 'myapp.tasks.report', 'cron': '15 3 * * *'}}, not {spec!r}"]
    found = []
    if unknown := set(spec) - KEYS:
        found.append(f"unknown keys {sorted(unknown)}; an entry takes {sorted(KEYS)}")
    found += _task_problems(spec.get("task"))
    found += _rule_problems(spec)
    args, kwargs = spec.get("args", []), spec.get("kwargs", {})
    if not isinstance(args, list | tuple):
        found.append(f"args = {args!r} must be a list")
    if not isinstance(kwargs, dict):
        found.append(f"kwargs = {kwargs!r} must be a dict")
    try:
        json.dumps([args, kwargs], allow_nan=False)
    except (TypeError, ValueError) as exc:
        found.append(f"args and kwargs must be JSON ({exc}); pass ids, strings, numbers, lists and dicts")
    for flag in ("enabled", "catch_up"):
        if not isinstance(spec.get(flag, False), bool):
            found.append(f"{flag} = {spec[flag]!r} must be True or False")
    return found


def _task_problems(path):
    if not isinstance(path, str) or not path:
        return ["'task' must name a @task by its dotted path, like 'myapp.tasks.send_reports'"]
    try:
        task = import_string(path)
    except ImportError as exc:
        return [f"task {path!r} cannot be imported: {exc}"]
    if not isinstance(task, Task):
        return [f"task {path!r} is not a task: decorate it with @task"]
    return []


def _rule_problems(spec):
    if ("cron" in spec) == ("every" in spec):
        return ["give exactly one of 'cron' (five fields) and 'every' (seconds, or like '10m')"]
    zone = spec.get("timezone") or settings.TIME_ZONE
    try:
        zone_info = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return [f"timezone {zone!r} is not a known time zone, like 'Europe/Paris' or 'UTC'"]
    try:
        Cron(spec["cron"], zone_info) if "cron" in spec else Every(spec["every"])
    except RuleError as exc:
        return [str(exc)]
    return []
