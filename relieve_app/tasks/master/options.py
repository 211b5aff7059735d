"""What one master runs with: the project's settings, with runrelieve's command line over them.

``relieve_app/conf.py`` holds every setting's default and rule; this only maps each option to its
setting, reads it there and checks it by that rule, so a value given on the command line is held to
the same rule as the setting it stands for.
"""

from dataclasses import dataclass, fields

from relieve_app import conf
from relieve_app.tasks.attempts import retry_after
from relieve_app.tasks.master.errors import StartupError

MIB = 2**20
MIN_HOLD_AHEAD = 5.0  # seconds: how far ahead a master holds ids due later, however often it sweeps

# option -> (the setting it reads, the command-line flag that may stand for it)
SETTINGS = {
    "socket_path": ("RELIEVE_SOCKET", "--socket"),
    "workers": ("RELIEVE_WORKERS", "--workers"),
    "max_attempts": ("RELIEVE_MAX_ATTEMPTS", None),
    "retry_delay": ("RELIEVE_RETRY_DELAY", None),
    "max_retry_delay": ("RELIEVE_MAX_RETRY_DELAY", None),
    "sweep_interval": ("RELIEVE_SWEEP_INTERVAL", None),
    "max_held": ("RELIEVE_MAX_HELD", None),
    "call_timeout": ("RELIEVE_CALL_TIMEOUT", None),
    "grace": ("RELIEVE_GRACE", None),
    "failsafe": ("RELIEVE_FAILSAFE", None),
    "client_timeout": ("RELIEVE_CLIENT_TIMEOUT", None),
    "max_calls": ("RELIEVE_MAX_CALLS", None),
    "max_memory_mb": ("RELIEVE_MAX_MEMORY_MB", None),
    "usage_interval": ("RELIEVE_USAGE_INTERVAL", None),
    "scale_down_after": ("RELIEVE_SCALE_DOWN_AFTER", None),
    "script": ("RELIEVE_TASK", "--task"),
    "preload": ("RELIEVE_PRELOAD", "--no-preload"),
    "immortal": ("RELIEVE_PRELOAD_IMMORTAL", None),
    "host": ("RELIEVE_HOST", None),
    "heartbeat": ("RELIEVE_HEARTBEAT", None),
    "lease": ("RELIEVE_LEASE", None),
    "durable": ("RELIEVE_DURABLE_WRITES", None),
}


@dataclass
class Options:
    socket_path: str
    workers: int  # children of a queue that `queues` does not name
    queues: dict  # name -> (children to start with, most it may grow to), None: `workers` of each
    max_attempts: int
    retry_delay: float  # first retry after this, doubling, capped at max_retry_delay
    max_retry_delay: float
    sweep_interval: float
    call_timeout: float  # a child stuck longer than this in one task is killed
    grace: float  # on SIGTERM, how long tasks in flight may take to finish
    failsafe: bool  # on SIGTERM, children in a task are left to finish it on their own
    client_timeout: float  # an idle or slow client connection is closed after this
    max_calls: int  # a child is replaced after this many tasks (0: never)
    max_memory_mb: int  # ... or once its resident memory passes this many MiB (0: never)
    usage_interval: float  # how often children are asked for their memory
    scale_down_after: float  # a queue grown past its least stops a child idle this long (scaling.py)
    script: str
    preload: bool  # fork children from a zygote with Django and the task's module loaded (zygote.py)
    immortal: bool  # ... made immortal before the forks, so the children keep sharing it (shared_image.py)
    host: str  # the name this master registers under; empty: the machine's host name
    heartbeat: float  # how often the master renews its lease and those of the rows it runs
    lease: float  # a master silent this long is gone, and the rows it held are taken over
    durable: bool  # PostgreSQL: wait for the disk at every claim and outcome (see taskstore.apply)
    max_held: int = conf.DEFAULTS["RELIEVE_MAX_HELD"]  # ready ids held per queue; the rest wait in the table
    lock_path: str | None = None  # SQLite: the file whose lock makes this the database's only master
    database: str = ""  # named in messages about the lock
    listen: dict | None = None  # PostgreSQL: parameters of the LISTEN connection for wake-ups
    reload_root: str | None = None  # reload the children when a .py file under it changes

    @classmethod
    def from_settings(cls, **given):
        """Every option from its setting (``conf.app_settings``), unless ``given``; one queue,
        "default", unless ``queues`` is given."""
        values = {option: getattr(conf.app_settings, name) for option, (name, _flag) in SETTINGS.items()}
        values["queues"] = {"default": None}
        unknown = set(given) - {field.name for field in fields(cls)}
        if unknown:
            raise TypeError(f"no such option: {', '.join(sorted(unknown))}")
        return cls(**{**values, **given})

    @property
    def max_memory(self):
        return self.max_memory_mb * MIB

    @property
    def hold_ahead(self):
        """Seconds ahead within which an id due later is held on a timer: two sweeps' worth, so a
        sweep reads each row before it is due even when the one before it came late."""
        return max(2 * self.sweep_interval, MIN_HOLD_AHEAD)

    def check(self):
        """The settings' rules, held against the values this master was given."""
        for option, (setting, flag) in SETTINGS.items():
            value = getattr(self, option)
            problem = conf.problem(setting, value) if setting in conf.RULES else None
            if problem:
                name = f"{flag} (or {setting})" if flag else setting
                raise StartupError(f"{name} = {value!r}: {problem}")
        if not self.queues:
            raise StartupError("no queue to serve: TASKS names none for the relieve backend")
        for name, size in self.queues.items():
            if size is not None and not 1 <= size[0] <= size[1]:
                raise StartupError(
                    f"queue {name!r} needs at least 1 child, and grows to as many or more (got {size})"
                )
        problem = conf.lease_problem(self.heartbeat, self.lease)
        if problem:
            raise StartupError(problem)

    def sizes(self):
        """``{name: (least, most)}``: the children each queue starts with, and the most it grows to."""
        return {name: size or (self.workers, self.workers) for name, size in self.queues.items()}

    def retry_after(self, attempts):
        return retry_after(attempts, self.retry_delay, self.max_retry_delay)
