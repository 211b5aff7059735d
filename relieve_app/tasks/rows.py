"""A task's row written with one INSERT whose SQL and constant values are worked out once per task.

``enqueue()`` runs in the caller's request, often thousands of times in one transaction: the ORM's
``create()`` spent longer building its model instance, its statement and its parameters than the
database took to write the row. Here the statement is worked out once for each shape of call: the
values a task gives at every call (its path, queue, priority, limits) and the defaults that never
change (``"READY"``, ``[]``) are prepared once, by their fields' own ``get_db_prep_save``; on
PostgreSQL they are written into the SQL as the literals psycopg would send for them, as it binds
on the client. A column left NULL is not named: the database writes NULL, as the ORM would have.
Only the arguments, ``run_after``, the unique key and the timestamps are prepared at each call.
The row is the ORM's (``test_the_row_enqueue_writes_is_the_row_the_orm_writes``). On PostgreSQL
the same statement NOTIFYs the masters of a READY row, unless its transaction announced enough of
them one by one already (``notifying.py``).
"""

from dataclasses import dataclass
from functools import lru_cache

from django.db import connections, router
from django.db.models.sql import InsertQuery

from relieve_app.models import TaskRecord
from relieve_app.tasks import notifying

# The fields whose value changes from one call of a task to the next: parameters of the statement.
PER_CALL = frozenset({"args", "kwargs", "run_after", "unique_key"})
# Values that may be part of a statement made once: hashable, and equal only when the same.
SCALARS = (str, int, float, bool, type(None))
# Defaults that are callables but give the same value at every call: a new empty list or dict.
SAME_AT_EACH_CALL = (list, dict)


def create(**fields):
    """As ``TaskRecord.objects.create(**fields)``: the saved row, with its id."""
    alias = router.db_for_write(TaskRecord)
    connection = connections[alias]
    constant, varying = [], []
    for name, value in fields.items():
        if value is not None and (name in PER_CALL or type(value) not in SCALARS):
            varying.append(name)
        else:
            constant.append((name, type(value), value))
    plan = _plan(alias, connection.vendor, tuple(constant), tuple(varying))
    if plan is None:
        return TaskRecord.objects.using(alias).create(**fields)
    for name, make in plan.per_call:
        fields[name] = make()
    params = [field.get_db_prep_save(fields[field.attname], connection) for field in plan.prepared]
    params += plan.constants
    sql = plan.sql
    if plan.announcing_sql is not None:
        extra = _announcement(plan, fields)
        if extra is not None and notifying.by_id(connection, extra[0]):
            sql, params = plan.announcing_sql, [*params, *extra]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if plan.returning:
            fields[plan.pk] = cursor.fetchone()[0]
        else:
            fields[plan.pk] = connection.ops.last_insert_id(
                cursor, TaskRecord._meta.db_table, TaskRecord._meta.pk.column
            )
    for name, make in plan.fresh:
        fields[name] = make()
    return TaskRecord.from_db(alias, None, [fields.get(name, value) for name, value in plan.row])


def _announcement(plan, fields):
    """The NOTIFY's parameters for this row (``notifying.parameters``), or None for none."""
    values = {**plan.defaults, **fields}
    if values["status"] != notifying.READY:
        return None
    return notifying.parameters(values["queue_name"], values["priority"], values["run_after"])


@dataclass(frozen=True, slots=True)
class Plan:
    """The statement for one shape of call, and how to fill it in."""

    sql: str
    returning: bool
    pk: str
    prepared: list  # the fields prepared at each call: PER_CALL ones given, defaults like timezone.now
    constants: list  # the parameters after them that are the same at every call (none when inlined)
    per_call: list  # (attname, default) of the defaults called at each call
    fresh: list  # (attname, list or dict): defaults the returned row holds as new objects
    row: list  # (attname, value unless the call has one) of every column, in the model's order
    announcing_sql: str | None  # PostgreSQL: the statement that NOTIFYs for the row too
    defaults: dict  # attname -> the value of a column the call does not give


@lru_cache(maxsize=256)
def _plan(alias, vendor, constant, varying):
    """The Plan for a call giving ``constant`` ((name, type, value) each) and ``varying`` (names);
    None when a column's value is not a plain parameter or default (then the ORM's ``create`` is used)."""
    connection = connections[alias]
    meta = TaskRecord._meta
    given = {name: value for name, _type, value in constant}
    prepared, per_call, constant_fields, constants, fresh, row = [], [], [], [], [], []
    for field in meta.concrete_fields:
        name = field.attname
        if field is meta.auto_field:
            row.append((name, None))
            continue
        if field.generated or getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            return None
        if name in varying:
            prepared.append(field)
            row.append((name, None))
            continue
        if name not in given and field.has_default() and callable(field.default):
            if field.default not in SAME_AT_EACH_CALL:
                prepared.append(field)
                per_call.append((name, field.default))
                row.append((name, None))
                continue
            fresh.append((name, field.default))
        if name in given:
            value = given[name]
        elif field.has_db_default() and not field.has_default():
            return None  # the ORM writes DEFAULT and reads the value back
        else:
            value = field.get_default()  # None, or "" for a string that is not null, when no default
        saved = field.get_db_prep_save(value, connection)
        if saved is not None or field.has_db_default():
            constant_fields.append(field)
            constants.append(saved)
        row.append((name, value))
    if meta.auto_field is None or (set(given) | set(varying)) - {name for name, _value in row}:
        return None  # no id to read back, or a name that is not a column: the ORM says what is wrong
    query = InsertQuery(TaskRecord)
    query.insert_values(prepared + constant_fields, [TaskRecord()])
    compiler = query.get_compiler(using=alias)
    returning = connection.features.can_return_columns_from_insert
    if returning:
        compiler.returning_fields = [meta.pk]
    statements = compiler.as_sql()
    sql, params = statements[0]
    count = len(prepared) + len(constants)
    if len(statements) != 1 or len(params) != count or sql.count("%s") != count:
        return None
    announcing_sql = None
    if vendor == "postgresql":
        sql, constants = _inline(connection, sql, len(prepared), constants), []
        if returning:
            announcing_sql = notifying.announcing(sql)
    defaults = {name: value for name, value in row if name not in given}
    return Plan(
        sql, returning, meta.pk.attname, prepared, constants, per_call, fresh, row, announcing_sql, defaults
    )


def _inline(connection, sql, kept, constants):
    """``sql`` with its placeholders after the first ``kept`` replaced by ``constants``, written as
    the literals psycopg sends for them: it binds on the client, and need not quote them at each call."""
    parts = sql.split("%s")
    literals = [connection.ops.compose_sql("%s", [value]).replace("%", "%%") for value in constants]
    return "%s".join(parts[: kept + 1]) + "".join(
        literal + part for literal, part in zip(literals, parts[kept + 1 :], strict=True)
    )
