"""django-q2's cluster of 4 workers, with its Django ORM broker (no other service needed)."""

from .base import System, manage


class DjangoQ(System):
    def settings(self, redis_url):
        cluster = {
            "name": "peerbench",
            "workers": 4,
            "orm": "default",
            # The documented reliability settings: a task is retried when unacknowledged after
            # `retry` seconds, which must exceed `timeout`; failures are acknowledged, not redone.
            "timeout": 30,
            "retry": 60,
            "ack_failures": True,
            "max_attempts": 5,
            "catch_up": False,
        }
        return {"Q_CLUSTER": cluster}

    def worker_commands(self, python, workers):
        return [manage(python, "qcluster")]


DJANGO_Q2 = DjangoQ(
    name="django-q2-orm",
    label="django-q2, ORM broker",
    enqueue="bench.peerbench.jobs.enqueue_django_q",
    apps=("django_q",),
    note="ORM broker on the same database; timeout 30 s, retry 60 s",
)
