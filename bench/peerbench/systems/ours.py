"""relieve: the project's own view hands the message to `runrelieve`, whose children send it."""

from .base import System, manage


class Ours(System):
    def worker_commands(self, python, workers):
        return [manage(python, "runrelieve", "--workers", str(workers))]


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
