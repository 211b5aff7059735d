"""PostgreSQL: the app announces each READY row itself (``tasks/notifying.py``), not a trigger.

A PL/pgSQL trigger made PostgreSQL load and compile PL/pgSQL in every new database session, which
with Django's default CONN_MAX_AGE of 0 is every request that enqueues. Reversed, the trigger of
0006 comes back, and the app's own NOTIFY then sends each wake-up twice, which a master takes as one.
"""

import importlib

from django.db import migrations

NOTIFY_TRIGGER = importlib.import_module("relieve_app.migrations.0006_notify_trigger")


def drop(apps, schema_editor):
    NOTIFY_TRIGGER.drop(apps, schema_editor)


def create(apps, schema_editor):
    NOTIFY_TRIGGER.create(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("relieve_app", "0012_flow_control"),
    ]

    operations = [migrations.RunPython(drop, create)]
