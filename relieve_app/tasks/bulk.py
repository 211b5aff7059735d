"""Many rows read or written by one plain statement: the master's hot path, without the ORM's cost.

On the master's database thread, an ORM ``update()`` or ``values_list()`` spends longer compiling
its query than the database spends running it, ``bulk_update`` builds a CASE per field and row, and
``bulk_create`` a statement per batch. Here each statement is made from the model's own fields; every
value is converted by its field (``get_db_prep_save``), as the ORM would. SQLite runs one prepared
statement for each row (``executemany``). PostgreSQL would parse and plan each of those again, as
Django binds values on the client: there the rows of a group go in one statement, their values in a
``VALUES`` list, which costs its server about a third less a row in groups of four.

The task store writes task state with it, and an app's hooks their own rows in the same transaction
(``contact/outcomes.py``); ``create`` stores one row as the ORM's ``create`` does, for a request's
hot path (the contact view's ``MailOutcome``).
"""

import re
from functools import cache

from django.db import connection, connections, router
from django.db.models import Model
from django.db.models.signals import post_save, pre_save

CHUNK = 500  # rows at most in one joined statement: a group is usually a few, a sweep's may be more


def create(model, **values):
    """As ``model.objects.create(**values)``: one ``INSERT ... RETURNING`` made once per model and
    database, where the ORM compiles its insert again at each call (the contact page stores a
    ``MailOutcome`` at each POST with it). Every column but the id is written, each value prepared
    by its field as the ORM prepares it (``pre_save``: ``auto_now`` and the like).

    Whatever this would not do as the ORM does goes through the ORM: a model with a ``save()`` of
    its own or with receivers of its save signals, a column the database fills (a generated one, a
    ``db_default``), an id given, an expression among the values, a database that cannot return the
    id of a row it inserts."""
    alias = router.db_for_write(model)
    target = connections[alias]
    instance = model(**values)
    statement = _insert(model, alias)
    if (
        statement is None
        or not target.features.can_return_columns_from_insert
        or _orm_does_more(model, values)
    ):
        instance.save(force_insert=True, using=alias)
        return instance
    fields, sql = statement
    params = [field.get_db_prep_save(field.pre_save(instance, True), target) for field in fields]
    with target.cursor() as cursor:
        cursor.execute(sql, params)
        instance.pk = cursor.fetchone()[0]
    instance._state.adding, instance._state.db = False, alias
    return instance


def _orm_does_more(model, values):
    """Whether the ORM's save of this row does more than an INSERT: the model's own ``save()``,
    receivers of its save signals, an id given, an expression to resolve."""
    pk = model._meta.pk
    return (
        model.save is not Model.save
        or pre_save.has_listeners(model)
        or post_save.has_listeners(model)
        or bool({"pk", pk.name, pk.attname} & values.keys())
        or any(hasattr(value, "resolve_expression") for value in values.values())
    )


@cache
def _insert(model, alias):
    """The columns ``create`` writes and its statement, for ``model`` on ``alias``; None when the
    id is not the database's to choose, or a column is the database's to fill."""
    meta = model._meta
    if meta.auto_field is None or meta.pk is not meta.auto_field:
        return None
    fields = [field for field in meta.concrete_fields if field is not meta.auto_field]
    if any(field.generated or field.has_db_default() for field in fields):
        return None
    quote = connections[alias].ops.quote_name
    return fields, f"{_insert_sql(meta, fields, quote)} RETURNING {quote(meta.pk.column)}"


def _insert_sql(meta, columns, quote):
    """``INSERT INTO table (columns) VALUES (%s, ...)`` for ``columns`` (fields) of ``meta``'s table."""
    names = ", ".join(quote(column.column) for column in columns)
    return f"INSERT INTO {quote(meta.db_table)} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"


def insert_many(rows, fields):
    """``rows`` (model instances of one model) inserted, of their ``fields``: one INSERT run for
    each row, or on PostgreSQL one INSERT of up to ``CHUNK`` rows."""
    if not rows:
        return
    meta = type(rows[0])._meta
    columns = [meta.get_field(name) for name in fields]
    values = _converted(columns, [[getattr(row, column.attname) for column in columns] for row in rows])
    sql = _insert_sql(meta, columns, connection.ops.quote_name)
    if not _joined(len(values)):
        _run(sql, values)
        return
    one_row = f"({', '.join(['%s'] * len(columns))})"
    for chunk in _chunks(values):
        _run(f"{sql}{f', {one_row}' * (len(chunk) - 1)}", [[value for row in chunk for value in row]])


def update_each(model, fields, items, where=None):
    """``UPDATE … SET fields WHERE pk = …`` for each ``(pk, values)`` of ``items``, each only where
    the row's fields also equal ``where`` (a dict); returns how many rows it changed. One statement
    run for each row, or on PostgreSQL one for up to ``CHUNK`` rows (``_update_joined``)."""
    if not items:
        return 0
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    wheres = [(meta.get_field(name), value) for name, value in (where or {}).items()]
    conditions = [field for field, _value in wheres]
    condition = [field.get_db_prep_save(value, connection) for field, value in wheres]
    converted = _converted(columns, [values for _pk, values in items])
    keys = [meta.pk.get_db_prep_save(pk, connection) for pk, _values in items]
    if _joined(len(items)) and len(set(keys)) == len(keys):  # a row twice: each UPDATE in turn, below
        return sum(
            _update_joined(meta, columns, conditions, chunk, condition)
            for chunk in _chunks([[key, *values] for key, values in zip(keys, converted, strict=True)])
        )
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(column.column)} = %s" for column in columns)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"
    sql += "".join(f" AND {quote(field.column)} = %s" for field in conditions)
    return _run(sql, [[*values, key, *condition] for key, values in zip(keys, converted, strict=True)])


def _update_joined(meta, columns, conditions, rows, condition):
    """``rows`` (``[pk, *values]``, converted) written by one UPDATE joined to their VALUES list,
    each only where the row's ``conditions`` (fields) equal ``condition`` (their values).

    A value list types its columns by its first row, where each placeholder is cast to its column's
    type (without a length, which a cast would cut to instead of refusing); NULLs and text then take
    the column's type in every row. A row of the table is written once, by its own values."""
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    types = [_cast_type(column) for column in [meta.pk, *columns]]
    first = ", ".join(f"%s::{kind}" for kind in types)
    other = ", ".join(["%s"] * len(types))
    values = ", ".join([f"({first})", *[f"({other})"] * (len(rows) - 1)])
    assignments = ", ".join(f"{quote(column.column)} = v.c{index}" for index, column in enumerate(columns))
    names = ", ".join(f"c{index}" for index in range(len(columns)))
    sql = (
        f"UPDATE {table} SET {assignments} FROM (VALUES {values}) AS v(pk, {names}) "
        f"WHERE {table}.{quote(meta.pk.column)} = v.pk"
    )
    sql += "".join(f" AND {table}.{quote(field.column)} = %s" for field in conditions)
    return _run(sql, [[value for row in rows for value in row] + condition])


def _cast_type(column):
    """The column's type in a cast: ``varchar(100)`` is cast to ``varchar``, so that a value too
    long is refused by the column as the ORM's UPDATE would have it refused, not cut."""
    return re.sub(r"\([^)]*\)", "", column.db_type(connection))


def _joined(count):
    """Whether ``count`` rows go in one statement: several rows, on PostgreSQL."""
    return count > 1 and connection.vendor == "postgresql"


def _chunks(rows):
    return [rows[start : start + CHUNK] for start in range(0, len(rows), CHUNK)]


def pairs(model, key, value, keys):
    """``{key: value}`` of ``model``'s rows whose field ``key`` is among ``keys``: one SELECT."""
    if not keys:
        return {}
    meta = model._meta
    quote = connection.ops.quote_name
    key_field, value_field = meta.get_field(key), meta.get_field(value)
    sql = (
        f"SELECT {quote(key_field.column)}, {quote(value_field.column)} FROM {quote(meta.db_table)} "
        f"WHERE {quote(key_field.column)} IN ({', '.join(['%s'] * len(keys))})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, list(keys))
        return dict(cursor.fetchall())


def _run(sql, params):
    """Run ``sql`` once per list of ``params``; the rows it changed. One alone is ``execute``d:
    psycopg's ``executemany`` opens a pipeline, which costs twice the client's time for one row."""
    with connection.cursor() as cursor:
        if len(params) == 1:
            cursor.execute(sql, params[0])
        else:
            cursor.executemany(sql, params)
        return cursor.rowcount


def _converted(columns, rows):
    """Each row's values (in ``columns``' order) as the database takes them.

    The rows of one group mostly share their values (one status, one ``now``, one owner): a value
    that is the same object in every row is converted once.
    """
    converted = []
    for index, column in enumerate(columns):
        values = [row[index] for row in rows]
        first = values[0]
        if all(value is first for value in values):
            converted.append([column.get_db_prep_save(first, connection)] * len(values))
        else:
            converted.append([column.get_db_prep_save(value, connection) for value in values])
    return [list(values) for values in zip(*converted, strict=True)]
