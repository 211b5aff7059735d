"""What every system under test declares; the stack starts, measures and kills it the same way."""

from dataclasses import dataclass, field

PEER_PATH = "/peer/contact/"


@dataclass(frozen=True)
class System:
    """One way to send the contact mail.

    `enqueue` is the dotted path of what the benchmark's view calls, on commit, with the saved
    MailOutcome (ours goes through the project's own view instead). `workers` gives the worker
    processes' command lines, each run from the repository root with the benchmark's settings.
    """

    name: str
    label: str
    enqueue: str = ""
    path: str = PEER_PATH
    apps: tuple = ()
    databases: tuple = ("postgres", "sqlite")
    redis: bool = False
    has_workers: bool = True  # False: the send happens in the web process, there is nothing to kill
    peer: bool = True  # False for ours and its variants: never the "best peer"
    database_query: str = ""  # appended to DATABASE_URL, e.g. "conn_max_age=0"
    note: str = ""
    extra: dict = field(default_factory=dict)

    def settings(self, redis_url):
        """Django settings this system adds to the project's."""
        return dict(self.extra)

    def worker_commands(self, python, workers):
        return []


def manage(python, *args):
    return [python, "manage.py", *args]
