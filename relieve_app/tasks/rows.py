"""A task's row written with one INSERT whose SQL is built once per database.

``enqueue()`` runs in the caller's request, often many times in one transaction; the ORM's
``create()`` spent longer building its statement than the database took to write the row.
"""

from functools import cache

from django.db import connections, router
from django.db.models.sql import InsertQuery

from relieve_app.models import TaskRecord


def create(**fields):
    """As ``TaskRecord.objects.create(**fields)``: the saved row, with its id."""
    alias = router.db_for_write(TaskRecord)
    connection = connections[alias]
    sql, returning = _insert(alias, connection.vendor)
    if sql is None:
        return TaskRecord.objects.using(alias).create(**fields)
    row = TaskRecord(**fields)
    params = [field.get_db_prep_save(field.pre_save(row, True), connection) for field in _columns()]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if returning:
            row.pk = cursor.fetchone()[0]
        else:
            row.pk = connection.ops.last_insert_id(
                cursor, TaskRecord._meta.db_table, TaskRecord._meta.pk.column
            )
    row._state.adding, row._state.db = False, alias
    return row


@cache
def _columns():
    return [
        field
        for field in TaskRecord._meta.local_concrete_fields
        if not field.generated and field is not TaskRecord._meta.auto_field
    ]


@cache
def _insert(alias, vendor):
    """The INSERT's SQL for this database, and whether it returns the new id; (None, False) when
    Django's own statement takes values that are not plain placeholders (then ``create`` is used)."""
    connection = connections[alias]
    columns = _columns()
    query = InsertQuery(TaskRecord)
    query.insert_values(columns, [TaskRecord()])
    compiler = query.get_compiler(using=alias)
    returning = connection.features.can_return_columns_from_insert
    if returning:
        compiler.returning_fields = [TaskRecord._meta.pk]
    statements = compiler.as_sql()
    sql, params = statements[0]
    if len(statements) != 1 or len(params) != len(columns) or sql.count("%s") != len(columns):
        return None, False
    return sql, returning
