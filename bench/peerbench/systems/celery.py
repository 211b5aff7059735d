"""Celery 5 on Redis, prefork pool of 4: once configured for reliability, once with its defaults."""

from .base import System

RELIABLE = {
    # What Celery's documentation asks for when a task must survive its worker being killed.
    "CELERY_TASK_ACKS_LATE": True,
    "CELERY_TASK_REJECT_ON_WORKER_LOST": True,
}


class Celery(System):
    def settings(self, redis_url):
        # A queue of its own: both Celery systems share the benchmark's Redis database.
        settings = {"CELERY_BROKER_URL": redis_url, "CELERY_TASK_DEFAULT_QUEUE": self.name, **self.extra}
        if self.extra.get("CELERY_TASK_ACKS_LATE"):
            settings["CELERY_RESULT_BACKEND"] = redis_url
        return settings

    def worker_commands(self, python, workers):
        app = "bench.peerbench.celery_app"
        argv = [python, "-m", "celery", "-A", app, "worker", "--pool", "prefork", "-c", str(workers)]
        return [[*argv, "-Q", self.name, "--loglevel", "WARNING", "--without-gossip", "--without-mingle"]]


CELERY_RELIABLE = Celery(
    name="celery-reliable",
    label="Celery 5 + Redis, acks_late",
    enqueue="bench.peerbench.celery_app.enqueue",
    redis=True,
    extra=RELIABLE,
    note="acks_late, reject_on_worker_lost, Redis result backend",
)
CELERY_DEFAULT = Celery(
    name="celery-default",
    label="Celery 5 + Redis, defaults",
    enqueue="bench.peerbench.celery_app.enqueue",
    redis=True,
    note="acknowledged on receipt, no result backend",
)
