"""python manage.py runrelieve: the master that runs every queue's tasks, the contact mail included."""

import logging

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from relieve_app import queues, server, wakeup
from relieve_app.checks import DEV_MAIL_BACKENDS, mail_backend

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the relieve master: a pool of children per task queue behind a Unix socket."

    def add_arguments(self, parser):
        parser.add_argument(
            "--workers",
            dest="workers",
            type=int,
            default=settings.RELIEVE_WORKERS,
            help="Children of each queue that --queue does not name (RELIEVE_WORKERS, default 4).",
        )
        parser.add_argument(
            "--queue",
            dest="queue_sizes",
            action="append",
            metavar="NAME=N",
            help="Children for one queue, e.g. --queue mail=4 --queue default=2 (RELIEVE_QUEUES).",
        )
        parser.add_argument(
            "--socket",
            dest="socket_path",
            default=settings.RELIEVE_SOCKET,
            help="Unix socket to listen on (RELIEVE_SOCKET, default var/relieve.sock).",
        )
        parser.add_argument(
            "--task",
            dest="script",
            default=settings.RELIEVE_TASK,
            help="What each child runs, as module:Class (RELIEVE_TASK, default relieve_app.runner:Runner).",
        )

    def handle(self, *args, workers, queue_sizes, socket_path, script, **options):
        warn_about_dev_mail()
        try:
            sizes = queues.sizes(queue_sizes)
        except queues.QueueError as exc:
            raise CommandError(str(exc)) from None
        config = server.Options(
            socket_path=socket_path,
            workers=workers,
            queues=sizes,
            max_attempts=settings.RELIEVE_MAX_ATTEMPTS,
            retry_delay=settings.RELIEVE_RETRY_DELAY,
            sweep_interval=settings.RELIEVE_SWEEP_INTERVAL,
            call_timeout=settings.RELIEVE_CALL_TIMEOUT,
            grace=settings.RELIEVE_GRACE,
            client_timeout=settings.RELIEVE_CLIENT_TIMEOUT,
            max_calls=settings.RELIEVE_MAX_CALLS,
            max_memory=settings.RELIEVE_MAX_MEMORY_MB * 2**20,
            usage_interval=settings.RELIEVE_USAGE_INTERVAL,
            script=script,
            durable=settings.RELIEVE_DURABLE_WRITES,
            host=settings.RELIEVE_HOST,
            heartbeat=settings.RELIEVE_HEARTBEAT,
            lease=settings.RELIEVE_LEASE,
            **database_options(),
        )
        try:
            server.run(config)
        except server.StartupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS("relieve master stopped"))


def database_options():
    """SQLite: the lock that keeps a second master off the file. PostgreSQL: where to LISTEN."""
    name = str(connection.settings_dict["NAME"])
    if connection.vendor == "sqlite":
        in_memory = name == ":memory:" or name.startswith("file::memory:")
        return {"database": name, "lock_path": None if in_memory else f"{name}.master.lock"}
    return {"database": name, "listen": wakeup.listen_params()}


def warn_about_dev_mail():
    """A backend that delivers nothing marks mail `sent` all the same: say so at every start."""
    backend = mail_backend()
    if backend not in DEV_MAIL_BACKENDS:
        return
    does = DEV_MAIL_BACKENDS[backend]
    if settings.DEBUG:
        log.warning("mail is NOT delivered: %s %s (DEBUG; set EMAIL_URL to send)", backend, does)
    else:
        log.warning(
            "RELIEVE_ALLOW_DEV_MAIL is on with DEBUG off: mail is NOT delivered but marked sent: %s %s",
            backend,
            does,
        )
