"""python manage.py prunetasks --older-than 7d: keep the task table bounded."""

import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from relieve_app.conf import app_settings
from relieve_app.models import TaskEvent, TaskRecord

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text):
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text or "")
    if not match:
        raise CommandError(f"--older-than {text!r}: write a number and a unit, like 7d, 12h, 30m or 2w")
    return timedelta(**{UNITS[match[2]]: int(match[1])})


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
        cutoff = timezone.now() - parse_age(older_than)
        old = TaskRecord.objects.filter(status__in=TaskRecord.FINISHED, finished_at__lt=cutoff)
        if dry_run:
            self.stdout.write(f"{old.count()} finished task result(s) older than {older_than} would go")
            return
        # Events of a contact message stay with its MailOutcome; the others go with their task.
        TaskEvent.objects.filter(task_result__in=old, outcome__isnull=True).delete()
        deleted = old.delete()[1].get(TaskRecord._meta.label, 0)
        self.stdout.write(
            self.style.SUCCESS(f"deleted {deleted} finished task result(s) older than {older_than}")
        )
