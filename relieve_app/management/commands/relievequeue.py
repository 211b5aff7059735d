"""python manage.py relievequeue pause|resume NAME, relievequeue list: paused queues, on every master."""

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from relieve_app.models import TaskRecord
from relieve_app.tasks import pausing


class Command(BaseCommand):
    help = "Pause or resume a queue of tasks on every master, or list the queues and which are paused."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["pause", "resume", "list"])
        parser.add_argument("name", nargs="?", help="The queue (for pause and resume).")

    def handle(self, *args, action, name, **options):
        if action == "list":
            return self.list()
        if not name:
            raise CommandError(f"relievequeue {action} needs a queue's name, e.g. relievequeue {action} mail")
        known = pausing.declared_queues()
        if name not in known:
            names = ", ".join(sorted(known))
            raise CommandError(f"no queue {name!r}: the relieve backend's queues are {names}")
        if action == "pause":
            done = pausing.pause_queue(name)
            self.stdout.write(f"queue {name} paused" if done else f"queue {name} was already paused")
        else:
            done = pausing.resume_queue(name)
            self.stdout.write(f"queue {name} resumed" if done else f"queue {name} was not paused")

    def list(self):
        paused = pausing.paused_queues()
        counts = {}
        rows = TaskRecord.objects.filter(status__in=[TaskRecord.Status.READY, TaskRecord.Status.RUNNING])
        for row in rows.order_by().values("queue_name", "status").annotate(n=Count("pk")):
            counts.setdefault(row["queue_name"], {})[row["status"]] = row["n"]
        for queue in sorted(pausing.declared_queues() | paused | set(counts)):
            state = "paused" if queue in paused else "running"
            ready = counts.get(queue, {}).get(TaskRecord.Status.READY, 0)
            running = counts.get(queue, {}).get(TaskRecord.Status.RUNNING, 0)
            self.stdout.write(f"{queue}: {state}, {ready} ready, {running} running")
