"""python manage.py prunetasks --older-than 7d: keep the task table bounded.

The same work as the task ``relieve_app.tasks.prune.prune_results``, which a RELIEVE_SCHEDULE
entry can run instead of a cron line.
"""

from django.core.management.base import BaseCommand, CommandError

from relieve_app.conf import app_settings
from relieve_app.tasks.prune import old_results, parse_age, prune


class Command(BaseCommand):
    help = "Delete finished task results (successful or failed) older than an age, with their events."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            dest="older_than",
            default=app_settings.RELIEVE_KEEP_RESULTS,
            help="Age of the finish time, like 7d, 12h, 30m (RELIEVE_KEEP_RESULTS, default 7d).",
        )
        parser.add_argument("--dry-run", dest="dry_run", action="store_true", help="Count, delete nothing.")

    def handle(self, *args, older_than, dry_run, **options):
        try:
            parse_age(older_than)
        except ValueError as exc:
            raise CommandError(f"--older-than {exc}") from None
        if dry_run:
            count = old_results(older_than).count()
            self.stdout.write(f"{count} finished task result(s) older than {older_than} would go")
            return
        deleted = prune(older_than)
        self.stdout.write(
            self.style.SUCCESS(f"deleted {deleted} finished task result(s) older than {older_than}")
        )
