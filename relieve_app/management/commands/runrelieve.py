"""python manage.py runrelieve: the master that sends the contact page's mail."""

import logging

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from relieve_app import server
from relieve_app.checks import DEV_MAIL_BACKENDS, mail_backend

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the relieve master: a pool of mail children behind a Unix socket."

    def add_arguments(self, parser):
        parser.add_argument(
            "--workers",
            dest="workers",
            type=int,
            default=settings.RELIEVE_WORKERS,
            help="Number of mail children (RELIEVE_WORKERS, default 4).",
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
            help="What each child runs, as module:Class (RELIEVE_TASK, default relieve_app.mail:Mail).",
        )
        parser.add_argument(
            "--reload",
            action="store_true",
            help="Replace the children, one at a time, whenever a .py file of the project changes.",
        )

    def handle(self, *args, workers, socket_path, script, reload, **options):
        warn_about_dev_mail()
        config = server.Options(
            socket_path=socket_path,
            workers=workers,
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
            reload_root=str(settings.BASE_DIR) if reload else None,
        )
        try:
            server.run(config)
        except server.StartupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS("relieve master stopped"))


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
