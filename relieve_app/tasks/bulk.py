"""Many rows read or written by one plain statement: the master's hot path, without the ORM's cost.

On the master's database thread, an ORM ``update()`` or ``values_list()`` spends longer compiling
its query than the database spends running it, ``bulk_update`` builds a CASE per field and row, and
``bulk_create`` a statement per batch. Here each statement is made from the model's own fields and
run once per row (``executemany``); every value is converted by its field (``get_db_prep_save``),
as the ORM would. The task store writes task state with it, and an app's hooks their own rows in
the same transaction (``contact/outcomes.py``); ``create`` stores one row as the ORM's ``create``
does, for a request's hot path (the contact view's ``MailOutcome``).
"""

from functools import cache

from django.db import connection, connections, router
from django.db.models import Model
from django.db.models.signals import post_save, pre_save


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
    """One INSERT run for each of ``rows`` (model instances of one model), of their ``fields``."""
    if not rows:
        return
    meta = type(rows[0])._meta
    columns = [meta.get_field(name) for name in fields]
    values = [[getattr(row, column.attname) for column in columns] for row in rows]
    _run(_insert_sql(meta, columns, connection.ops.quote_name), _converted(columns, values))


def update_each(model, fields, items, where=None):
    """``UPDATE … SET fields WHERE pk = …`` run for each ``(pk, values)`` of ``items``, each only
    where the row's fields also equal ``where`` (a dict); returns how many rows it changed."""
    if not items:
        return 0
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(column.column)} = %s" for column in columns)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"
    condition = []
    for name, value in (where or {}).items():
        field = meta.get_field(name)
        sql += f" AND {quote(field.column)} = %s"
        condition.append(field.get_db_prep_save(value, connection))
    converted = _converted(columns, [values for _pk, values in items])
    params = [[*values, pk, *condition] for (pk, _values), values in zip(items, converted, strict=True)]
    return _run(sql, params)


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
