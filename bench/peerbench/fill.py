"""Queue a backlog fast, in one process: what the contact view stores and hands over, without HTTP.

Usage: python -m bench.peerbench.fill COUNT PREFIX   (with the benchmark's settings in the environment)

Each row gets the subject PREFIX-<n> and, on commit, the system's PEERBENCH_ENQUEUE, as the view
would call it. Ours has none: it stores what the project's view stores (the row and its mail
task); with its master stopped the hand-over on commit finds nobody, and the tasks wait, ready,
for the start-up sweep.
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

    if not settings.PEERBENCH_ENQUEUE:
        from relieve_app.contact.views import enqueue as store_and_enqueue

        for n in range(int(count)):
            store_and_enqueue(
                {"emitter": f"visitor{n}@example.org", "subject": f"{prefix}-{n}", "body": BODY.format(n=n)}
            )
        return
    enqueue = import_string(settings.PEERBENCH_ENQUEUE)
    for n in range(int(count)):
        with transaction.atomic():
            outcome = MailOutcome.objects.create(
                emitter=f"visitor{n}@example.org",
                recipient=settings.CONTACT_RECIPIENT,
                subject=f"{prefix}-{n}",
                body=BODY.format(n=n),
            )
            transaction.on_commit(partial(enqueue, outcome))


if __name__ == "__main__":
    main()
