"""python manage.py runrelieve: the master that runs every queue's tasks, the contact mail included."""

import faulthandler
import logging
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from relieve_app.checks import DEV_MAIL_BACKENDS, mail_backend, mail_setting, refusal
from relieve_app.conf import DEFAULTS, app_settings
from relieve_app.tasks.master import queues, server, wakeup
from relieve_app.tasks.master.errors import StartupError
from relieve_app.tasks.master.options import Options

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the relieve master: a pool of children per task queue behind a Unix socket."

    def add_arguments(self, parser):
        parser.add_argument(
            "--workers",
            dest="workers",
            type=int,
            default=app_settings.RELIEVE_WORKERS,
            help=f"Children of each queue that --queue does not name (RELIEVE_WORKERS, default "
            f"{DEFAULTS['RELIEVE_WORKERS']}).",
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
            default=app_settings.RELIEVE_SOCKET,
            help="Unix socket to listen on (RELIEVE_SOCKET, default var/relieve.sock under BASE_DIR).",
        )
        parser.add_argument(
            "--task",
            dest="script",
            default=app_settings.RELIEVE_TASK,
            help="What each child runs, as module:Class (RELIEVE_TASK, default: the django.tasks runner).",
        )
        parser.add_argument(
            "--no-preload",
            dest="preload",
            action="store_false",
            default=app_settings.RELIEVE_PRELOAD,
            help="Start each child as a fresh interpreter rather than fork it from a process with "
            "Django and the task loaded (RELIEVE_PRELOAD=False).",
        )
        parser.add_argument(
            "--reload",
            action="store_true",
            help="Replace the children, one at a time, whenever a .py file of the project changes.",
        )

    def handle(self, *args, workers, queue_sizes, socket_path, script, preload, reload, verbosity, **options):
        if problems := refusal(sending=True):  # CannotDeliver is only a warning in the system checks
            raise CommandError(f"relieve cannot start: {problems}")
        self.log_to_stderr()
        log_at(verbosity)
        # A master that dies of a fatal signal (SIGSEGV in a C extension, say) prints the stack of the
        # thread that got it first; the zygote and the children it forks keep the handler. Only that
        # thread's: reading the others while they run can fault in the handler itself, which then
        # dies of that second signal (a SIGBUS, seen once) with its report cut short.
        faulthandler.enable(all_threads=False)
        warn_about_dev_mail()
        try:
            sizes = queues.sizes(queue_sizes)
        except queues.QueueError as exc:
            raise CommandError(str(exc)) from None
        config = Options.from_settings(
            socket_path=socket_path,
            workers=workers,
            queues=sizes,
            script=script,
            preload=preload,
            reload_root=str(getattr(settings, "BASE_DIR", Path.cwd())) if reload else None,
            **database_options(),
        )
        try:
            server.run(config)
        except StartupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS("relieve master stopped"))

    def log_to_stderr(self):
        """A master that says nothing cannot be run: when the project routes no relieve_app log
        record anywhere, its lines go to stderr, as runserver's do."""
        logger = logging.getLogger("relieve_app")
        if logger.hasHandlers():
            return
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)


def log_at(verbosity):
    """-v 0 keeps warnings and errors only: no line a task, as db_worker's -v 0 and Celery's WARNING.
    -v 2 and 3 add the debug lines. -v 1, the default, leaves the levels LOGGING sets."""
    level = {0: logging.WARNING, 2: logging.DEBUG, 3: logging.DEBUG}.get(verbosity)
    if level is not None:
        for name in ("relieve_app", "django.tasks"):
            logging.getLogger(name).setLevel(level)


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
        log.warning(
            "mail is NOT delivered: %s %s (DEBUG; point %s at an SMTP server to send)",
            backend,
            does,
            mail_setting(),
        )
    else:
        log.warning(
            "RELIEVE_ALLOW_DEV_MAIL is on with DEBUG off: mail is NOT delivered but marked sent: %s %s",
            backend,
            does,
        )
