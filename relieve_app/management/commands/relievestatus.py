"""python manage.py relievestatus: the live pool and the messages, once, as JSON, or refreshed like `top`.

Exit status 0 when a master answers, 1 when none does within --timeout: usable as a health check.
``--task ID`` says how one task is doing and, while it waits, why; ``--prometheus`` prints the
metrics in Prometheus's text format (what the metrics/ view serves).
"""

import json
import signal
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from relieve_app.conf import app_settings
from relieve_app.models import TaskRecord
from relieve_app.monitor import metrics, status, status_text
from relieve_app.monitor.progress_bar import progress_text
from relieve_app.monitor.why import why_waiting
from relieve_app.tasks.progress import progress

CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen


class Command(BaseCommand):
    help = "Show the relieve masters, their children and the messages; exit 1 when no master answers."

    def add_arguments(self, parser):
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="One JSON object (one per refresh)."
        )
        parser.add_argument("--watch", action="store_true", help="Refresh in place until Ctrl-C.")
        parser.add_argument("--interval", type=float, default=2.0, help="Seconds between refreshes.")
        parser.add_argument(
            "--timeout", type=float, default=0.75, help="Seconds to wait for the master (default 0.75)."
        )
        parser.add_argument(
            "--socket", dest="socket_path", default=app_settings.RELIEVE_SOCKET, help="The master's socket."
        )
        parser.add_argument(
            "--task", type=int, metavar="ID", help="One task: its state, progress, and why it waits."
        )
        parser.add_argument(
            "--prometheus", action="store_true", help="The metrics in Prometheus's text format."
        )

    def handle(
        self, *args, as_json, watch, interval, timeout, socket_path, task=None, prometheus=False, **options
    ):
        if task is not None:
            return self.show_task(task, as_json, timeout)
        if prometheus:
            self.stdout.write(metrics.render(timeout=timeout, socket_path=socket_path).decode(), ending="")
            return
        if not watch:
            state = self.show(as_json, timeout, socket_path)
            if not state["masters"]:
                sys.exit(1)  # what is wrong is already printed, once: a health check reads the status
            return
        # A shell starts a background job with SIGINT ignored, and Python then leaves it ignored: the
        # watch would outlive its Ctrl-C. It says "until Ctrl-C", so it takes SIGINT back, and SIGTERM too.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            while True:
                self.show(as_json, timeout, socket_path, clear=not as_json)
                time.sleep(max(interval, 0.1))
        except KeyboardInterrupt:
            self.stdout.write("")

    def show_task(self, task_id, as_json, timeout):
        row = TaskRecord.objects.filter(pk=task_id).first()
        if row is None:
            raise CommandError(f"no task has the id {task_id}")
        reasons = why_waiting(row, timeout=timeout) if row.status == TaskRecord.Status.READY else []
        done = progress(row.pk)
        if as_json:
            state = {"id": row.pk, "task": row.task_path, "queue": row.queue_name, "status": row.status}
            state["waiting_because"] = reasons
            state["progress"] = {**done, "at": done["at"].isoformat()} if done else None
            self.stdout.write(_dumps(state))
            return
        self.stdout.write(f"task {row.pk} {row.task_path} on queue {row.queue_name}: {row.status}")
        if done is not None:
            self.stdout.write(f"progress: {progress_text(done)}")
        for reason in reasons:
            self.stdout.write(f"waiting: {reason}")

    def show(self, as_json, timeout, socket_path, clear=False):
        state = status.collect(timeout=timeout, socket_path=socket_path)
        if as_json:
            self.stdout.write(_dumps(state))
        else:
            text = "\n".join(status_text.render(state, socket_path))
            self.stdout.write((CLEAR if clear else "") + text)
        self.stdout.flush()
        return state


def _dumps(state):
    return json.dumps(state, sort_keys=True)
