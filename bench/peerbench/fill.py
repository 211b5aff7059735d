"""Queue a backlog fast, in one process: what the contact view stores and hands over, without HTTP.

Usage: python -m bench.peerbench.fill COUNT PREFIX   (with the benchmark's settings in the environment)

Each row gets the subject PREFIX-<n> and, on commit, the system's PEERBENCH_ENQUEUE, as the view
would call it. Ours has none: with its master stopped the view's hand-over fails too, and the rows
wait, queued, for the start-up sweep.
"""

import os
import sys
from functools import partial


def main(argv=None):
    count, prefix = (argv or sys.argv[1:])[:2]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peerbench.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import transaction
    from django.utils.module_loading import import_string

    from bench.peerbench.load import BODY
    from relieve_app.models import MailOutcome

    enqueue = import_string(settings.PEERBENCH_ENQUEUE) if settings.PEERBENCH_ENQUEUE else None
    for n in range(int(count)):
        with transaction.atomic():
            outcome = MailOutcome.objects.create(
                emitter=f"visitor{n}@example.org",
                recipient=settings.CONTACT_RECIPIENT,
                subject=f"{prefix}-{n}",
                body=BODY.format(n=n),
            )
            if enqueue is not None:
                transaction.on_commit(partial(enqueue, outcome))


if __name__ == "__main__":
    main()
