"""Who holds a RUNNING row, read from its ``owner``: a master, or a child that outlived its master.

A child finishing a task for a master that stopped (``failsafe.py``) holds the row under
``detached:<child pid>:<master id>``: built here alone, by the master that lets the child go and by
the child itself, so both name it the same. The web side reads it too, to say what such a row is.
"""

DETACHED = "detached:"


def detached_owner(master, pid):
    """The id the child ``pid`` of ``master`` holds a row by once its master is gone."""
    return f"{DETACHED}{pid}:{master}"


def is_detached(owner):
    return bool(owner) and owner.startswith(DETACHED)


def describe(owner):
    """``owner`` in words, for the status pages."""
    if is_detached(owner):
        pid, _, master = owner.removeprefix(DETACHED).partition(":")
        return f"finishing in child pid {pid} of stopped master {master}"
    return f"master {owner}" if owner else "nobody"
