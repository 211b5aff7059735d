"""python manage.py runrelieve: the master that sends the contact page's mail."""

import logging
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from relieve_app import server
from relieve_app.checks import DEV_MAIL_BACKENDS, mail_backend
from relieve_app.conf import app_settings

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the relieve master: a pool of mail children behind a Unix socket."

    def add_arguments(self, parser):
        parser.add_argument(
            "--workers",
            dest="workers",
            type=int,
            default=app_settings.RELIEVE_WORKERS,
            help="Number of mail children (RELIEVE_WORKERS, default 4).",
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
            help="What each child runs, as module:Class (RELIEVE_TASK, default relieve_app.mail:Mail).",
        )
        parser.add_argument(
            "--reload",
            action="store_true",
            help="Replace the children, one at a time, whenever a .py file of the project changes.",
        )

    def handle(self, *args, workers, socket_path, script, reload, **options):
        self.log_to_stderr()
        warn_about_dev_mail()
        config = server.Options(
            socket_path=socket_path,
            workers=workers,
            max_attempts=app_settings.RELIEVE_MAX_ATTEMPTS,
            retry_delay=app_settings.RELIEVE_RETRY_DELAY,
            sweep_interval=app_settings.RELIEVE_SWEEP_INTERVAL,
            call_timeout=app_settings.RELIEVE_CALL_TIMEOUT,
            grace=app_settings.RELIEVE_GRACE,
            client_timeout=app_settings.RELIEVE_CLIENT_TIMEOUT,
            max_calls=app_settings.RELIEVE_MAX_CALLS,
            max_memory=app_settings.RELIEVE_MAX_MEMORY_MB * 2**20,
            usage_interval=app_settings.RELIEVE_USAGE_INTERVAL,
            script=script,
            reload_root=str(getattr(settings, "BASE_DIR", Path.cwd())) if reload else None,
        )
        try:
            server.run(config)
        except server.StartupError as exc:
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
