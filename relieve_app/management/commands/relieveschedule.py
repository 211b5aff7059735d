"""python manage.py relieveschedule [--json]: the RELIEVE_SCHEDULE entries, their next and last runs."""

import json

from django.core.management.base import BaseCommand

from relieve_app.tasks.schedule import listing

COLUMNS = [
    ("NAME", "name"),
    ("RULE", "rule"),
    ("ZONE", "timezone"),
    ("ENABLED", "enabled"),
    ("NEXT RUN", "next_run"),
    ("LAST RUN", "last_run"),
    ("RESULT", "last_status"),
]


class Command(BaseCommand):
    help = "List the periodic tasks of RELIEVE_SCHEDULE: rule, zone, on or off, next and last run, result."

    def add_arguments(self, parser):
        parser.add_argument("--json", dest="as_json", action="store_true", help="A JSON list.")

    def handle(self, *args, as_json, **options):
        rows = listing.rows()
        if as_json:
            self.stdout.write(json.dumps(rows, sort_keys=True))
            return
        if not rows:
            self.stdout.write("no periodic tasks: RELIEVE_SCHEDULE is empty")
            return
        table = [[title for title, _key in COLUMNS]]
        for row in rows:
            cells = {**row, "enabled": "yes" if row["enabled"] else "no"}
            if row["last_result"] is not None:
                cells["last_status"] = f"#{row['last_result']} {row['last_status']}"
            table.append(["-" if cells[key] is None else str(cells[key]) for _title, key in COLUMNS])
        widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
        for line in table:
            cells = (text.ljust(width) for text, width in zip(line, widths, strict=True))
            self.stdout.write("  ".join(cells).rstrip())
