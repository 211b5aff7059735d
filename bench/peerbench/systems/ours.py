"""relieve: the project's own view hands the message to `runrelieve`, whose children send it."""

from .base import System, manage

# The benchmark's only task is the contact mail: serving the project's "default" queue as well would
# give ours 4 idle children more than the 4 worker processes every system gets.
MAIL_ONLY = {"default": {"BACKEND": "relieve_app.backend.RelieveBackend", "QUEUES": ["mail"]}}


class Ours(System):
    def settings(self, redis_url):
        return {"TASKS": MAIL_ONLY, **self.extra}

    def worker_commands(self, python, workers):
        # -v 0, no line a task, as db_worker runs with --verbosity 0 and Celery at --loglevel WARNING
        return [manage(python, "runrelieve", "--workers", str(workers), "--verbosity", "0")]


OURS = Ours(
    name="relieve",
    label="relieve (runrelieve, 4 children)",
    path="/contact/",
    peer=False,
    note="the project as it is: view -> Unix socket -> master -> least busy child -> SMTP",
)
# The same, with Django keeping database connections open (CONN_MAX_AGE) instead of one per batch.
OURS_PERSISTENT = Ours(
    name="relieve-conn-max-age",
    label="relieve, DATABASE_URL ?conn_max_age=600",
    path="/contact/",
    peer=False,
    database_query="conn_max_age=600",
    note="ours with persistent database connections in the master and the web workers",
)
