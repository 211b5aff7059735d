"""Django's Tasks framework: the same `@task` function, only TASKS differs between backends."""

from .base import System, manage


class DatabaseTasks(System):
    def settings(self, redis_url):
        return {"TASKS": {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}}

    def worker_commands(self, python, workers):
        argv = manage(python, "db_worker", "--no-reload", "--verbosity", "0")
        return [list(argv) for _ in range(workers)]


class RQTasks(System):
    def settings(self, redis_url):
        return {
            "TASKS": {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}},
            "RQ_QUEUES": {"default": {"URL": redis_url}},
        }

    def worker_commands(self, python, workers):
        pool = manage(python, "rqworker-pool", "default", "--num-workers", str(workers))
        return [[*pool, "--job-class", "django_tasks_rq.Job"]]  # as its README says


TASKS_DB = DatabaseTasks(
    name="django-tasks-db",
    label="django.tasks + django-tasks-db",
    enqueue="bench.peerbench.jobs.enqueue_task",
    apps=("django_tasks_db",),
    note="4 `db_worker` processes, default 1 s poll interval",
)
TASKS_RQ = RQTasks(
    name="django-tasks-rq",
    label="django.tasks + django-tasks-rq",
    enqueue="bench.peerbench.jobs.enqueue_task",
    apps=("django_tasks", "django_rq", "django_tasks_rq"),
    redis=True,
    note="`rqworker-pool` of 4 on Redis; RQ forks a work horse per job",
)
