"""PostgreSQL: a READY task row announces itself (NOTIFY) from a trigger, in the inserting transaction.

The database sends the notification on commit, whatever inserted the row (``enqueue()``, a retry,
the admin, SQL), at no extra round trip. Other databases have no NOTIFY: nothing to do there.
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION relieve_notify_ready() RETURNS trigger AS $$
DECLARE
    channel text := 'relieve_' || NEW.queue_name;
BEGIN
    -- A channel is an identifier (63 bytes at most); a longer queue name is refused at the
    -- master's start, and its rows are found by the sweep.
    IF octet_length(channel) <= 63 THEN
        PERFORM pg_notify(channel, CASE
            WHEN NEW.priority = 0 AND NEW.run_after IS NULL THEN NEW.id::text
            ELSE json_strip_nulls(json_build_object(
                'id', NEW.id,
                'priority', NEW.priority,
                'run_after', extract(epoch FROM NEW.run_after)
            ))::text
        END);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql
"""
TRIGGER = """
CREATE TRIGGER relieve_notify_ready AFTER INSERT ON {table}
FOR EACH ROW WHEN (NEW.status = 'READY') EXECUTE FUNCTION relieve_notify_ready()
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = schema_editor.quote_name(apps.get_model("relieve_app", "TaskRecord")._meta.db_table)
    schema_editor.execute(FUNCTION)
    schema_editor.execute(TRIGGER.format(table=table))


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = schema_editor.quote_name(apps.get_model("relieve_app", "TaskRecord")._meta.db_table)
    schema_editor.execute(f"DROP TRIGGER IF EXISTS relieve_notify_ready ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS relieve_notify_ready()")


class Migration(migrations.Migration):
    dependencies = [
        ("relieve_app", "0005_masters"),
    ]

    operations = [migrations.RunPython(create, drop)]
