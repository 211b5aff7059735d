"""Admin lists that stay fast on a table of millions of finished task results.

Django's defaults read the whole table on every page: an exact ``COUNT(*)`` (twice), and a
``SELECT DISTINCT`` for each value filter. Here the filters' values come from a skip scan of
their index (one index probe per distinct value), and PostgreSQL's count of a large list is the
planner's estimate, which its page says is one.
"""

from django.contrib.admin import AllValuesFieldListFilter
from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

EXACT_BELOW = 10_000  # a list the planner expects to be smaller than this is counted exactly


def distinct_values(model, field_name, using="default"):
    """The distinct non-null values of an indexed column, in order, one index probe per value."""
    connection = connections[using]
    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(model._meta.get_field(field_name).column)
    sql = (
        f"WITH RECURSIVE seen(value) AS ("
        f" SELECT MIN({column}) FROM {table}"
        f" UNION ALL SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > seen.value)"
        f" FROM seen WHERE seen.value IS NOT NULL"
        f") SELECT value FROM seen WHERE value IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


class IndexedValuesFilter(AllValuesFieldListFilter):
    """Django's filter by each value of a column, its values read by ``distinct_values``."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.lookup_choices = distinct_values(field.model, field.name, model_admin.get_queryset(request).db)


class EstimatingPaginator(Paginator):
    """An exact count for small lists and on SQLite; PostgreSQL's estimate for large ones."""

    @cached_property
    def count(self):
        estimate = planned_rows(self.object_list)
        if estimate is None or estimate < EXACT_BELOW:
            return super().count
        self.estimated = True
        return estimate

    estimated = False


def planned_rows(queryset):
    """The rows PostgreSQL's planner expects ``queryset`` to return; None elsewhere."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    return int(plan[0]["Plan"]["Plan Rows"])
