"""A task whose module listens to Django's task signals, wherever it is imported (the master too)."""

from django.dispatch import receiver
from django.tasks import task
from django.tasks.signals import task_finished, task_started


@task
def mark(path):
    return path


def _note(task_result, what):
    if task_result.task.module_path == f"{__name__}.mark":
        with open(task_result.args[0], "a") as file:
            file.write(f"{what} {task_result.id} {task_result.status}\n")


@receiver(task_started)
def started(sender, task_result, **kwargs):
    _note(task_result, "started")


@receiver(task_finished)
def finished(sender, task_result, **kwargs):
    _note(task_result, "finished")
