"""relieve: the project's own view hands the message to `runrelieve`, whose children send it."""

from .base import System, manage


class Ours(System):
    def worker_commands(self, python, workers):
        return [manage(python, "runrelieve", "--workers", str(workers))]


OURS = Ours(
    name="relieve",
    label="relieve (runrelieve, 4 children)",
    path="/contact/",
    note="the project as it is: view -> Unix socket -> master -> least busy child -> SMTP",
)
