"""A task module that cannot be imported: what a bad deploy looks like to the children."""

import a_module_that_does_not_exist  # noqa: F401
from django.tasks import task


@task
def job():
    return "never"
