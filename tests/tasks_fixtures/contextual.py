"""Tasks that use the context, async def, the ORM, limits, and RetryLater."""

import asyncio
import os
import time

from django.tasks import task

from relieve_app.models import MailOutcome
from relieve_app.tasks.retry import RetryLater


@task(takes_context=True)
async def async_attempt(context, delay):
    await asyncio.sleep(delay)
    return {"attempt": context.attempt, "id": context.task_result.id}


@task(takes_context=True)
def held_attempt(context, path):
    """Blocks until ``path`` exists on the first attempt; answers at once on later ones."""
    if context.attempt == 1:
        while not os.path.exists(path):
            time.sleep(0.02)
    return {"attempt": context.attempt, "pid": os.getpid()}


@task(timeout=1.0, max_attempts=2)
def hang():
    time.sleep(3600)


@task(takes_context=True, max_attempts=4)
def flaky(context, succeed_on):
    if context.attempt < succeed_on:
        raise RetryLater(f"not yet (attempt {context.attempt})", delay=0.1)
    return context.attempt


@task(takes_context=True)
def retry_once_after(context, delay):
    if context.attempt == 1:
        raise RetryLater("once more", delay=delay)
    return context.attempt


@task
def count_outcomes(subject):
    """The ORM inside a child."""
    return MailOutcome.objects.filter(subject=subject).count()
