"""What the enqueues of one transaction share, kept among its on-commit callbacks.

Django drops the callbacks registered in a savepoint that rolls back: an object kept there goes
with the rows written at its savepoint level, and those written after the rollback find the one
before it again. The SQLite hand-over (``backend.Handover``) and PostgreSQL's announcements
(``notifying.Batch``) each keep one there.
"""


def pending(connection, cls):
    """The ``cls`` instance registered with ``on_commit`` at this savepoint level, when it is the
    last callback registered; None otherwise, and outside a transaction."""
    callbacks = connection.run_on_commit
    if not callbacks or not connection.in_atomic_block:
        return None
    sids, last = callbacks[-1][:2]
    if isinstance(last, cls) and sids == set(connection.savepoint_ids):
        return last
    return None
