"""Modules Django imports only on first use, imported before the master forks its zygote.

A module imported after a fork is a copy of its own in each process that imports it; imported
before, its pages are the master's, shared with the zygote and every child the zygote forks.
Django imports some only when first needed: a database's SQL compiler at the first query, a mail
backend at the first ``get_connection()``, and the IDNA codec at the first message (it encodes the
host's name in the Message-ID). Left to each process, they cost a mail child about 1 MiB of its own
(``bench/children.py``, ``tree-pss-mb``).

The list is of Django's and the standard library's modules only: a task's own module is already
among the zygote's preloads. A module that does not import (a mail backend that is not installed,
say), or a database whose backend does not load, is skipped here, and fails where it is used, as it
would have: nothing here keeps a master from starting.
"""

import logging
from importlib import import_module

log = logging.getLogger(__name__)

IDNA = "encodings.idna"  # Django's mail encodes the host's name with it (django.core.mail.utils)


def import_ahead():
    """Import every module of ``modules()`` now; those that fail are logged and skipped."""
    for name in modules():
        try:
            import_module(name)
        except Exception as exc:  # its user meets the same error later, where it is used
            log.info("%s is not imported ahead: %s", name, exc)


def modules():
    """The dotted names: each database's SQL compiler, each mail backend's module, the IDNA codec."""
    names = [*compilers(), *(path.rpartition(".")[0] for path in mail_backends()), IDNA]
    return list(dict.fromkeys(names))


def compilers():
    """The SQL compiler module of each database whose backend loads."""
    from django.db import connections

    found = []
    for alias in connections:
        try:
            found.append(connections[alias].ops.compiler_module)
        except Exception as exc:  # a database this master may never open: it fails where it is used
            log.info("the SQL compiler of database %r is not imported ahead: %s", alias, exc)
    return found


def mail_backends():
    """The dotted path of every mail backend the settings name: MAILERS, or the older EMAIL_BACKEND."""
    from django.conf import settings

    mailers = getattr(settings, "MAILERS", None)
    if mailers is None:
        return [settings.EMAIL_BACKEND]
    return [mailer["BACKEND"] for mailer in mailers.values() if mailer.get("BACKEND")]
