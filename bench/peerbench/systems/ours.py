"""relieve: the project's own view hands the message to `runrelieve`, whose children send it."""

from dataclasses import dataclass

from .base import System, manage

# The benchmark's only task is the contact mail: serving the project's "default" queue as well would
# give ours 4 idle children more than the 4 worker processes every system gets.
MAIL_ONLY = {"default": {"BACKEND": "relieve_app.backend.RelieveBackend", "QUEUES": ["mail"]}}


@dataclass(frozen=True)
class Ours(System):
    most: int = 0  # the mail queue grows from the benchmark's workers to this many children (0: fixed)

    def settings(self, redis_url):
        return {"TASKS": MAIL_ONLY, **self.extra}

    def worker_commands(self, python, workers):
        # -v 0, no line a task, as db_worker runs with --verbosity 0 and Celery at --loglevel WARNING
        queue = ["--queue", f"mail={workers}-{self.most}"] if self.most > workers else []
        return [manage(python, "runrelieve", "--workers", str(workers), *queue, "--verbosity", "0")]


OURS = Ours(
    name="relieve",
    label="relieve (runrelieve, 4 children)",
    path="/contact/",
    peer=False,
    note="the project as it is: view -> Unix socket -> master -> least busy child -> SMTP",
)
# The same, with a database connection opened for each request (Django's own default; the project
# keeps them for CONN_MAX_AGE seconds, as it does for the peers, which share its settings).
OURS_CONNECTION_A_REQUEST = Ours(
    name="relieve-conn-max-age-0",
    label="relieve, DATABASE_URL ?conn_max_age=0",
    path="/contact/",
    peer=False,
    database_query="conn_max_age=0",
    note="ours opening a database connection for each request, and for each task in the children",
)
# The same, its mail queue growing while mails wait: as many children at most as django-post-office
# has threads (4 processes of 5), for a slow SMTP server.
OURS_RANGE = Ours(
    name="relieve-mail-4-20",
    label="relieve, --queue mail=4-20",
    path="/contact/",
    peer=False,
    most=20,
    note="ours with a mail queue that grows from 4 children to 20 while mails wait",
)
