"""The contact mail task moved to ``relieve_app.contact``: rows stored under its old path follow it.

A row names its task by path, and a child imports that path to run it; a waiting row with the old
path would fail at import after an upgrade.
"""

from django.db import migrations

OLD = "relieve_app.mailtask.send_contact_mail"
NEW = "relieve_app.contact.mailtask.send_contact_mail"


def forwards(apps, schema_editor):
    apps.get_model("relieve_app", "TaskRecord").objects.filter(task_path=OLD).update(task_path=NEW)


def backwards(apps, schema_editor):
    apps.get_model("relieve_app", "TaskRecord").objects.filter(task_path=NEW).update(task_path=OLD)


class Migration(migrations.Migration):
    dependencies = [("relieve_app", "0006_notify_trigger")]
    operations = [migrations.RunPython(forwards, backwards)]
