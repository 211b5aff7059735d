"""A project that only installs the app gets relieve's backend for the contact mail, beside its own TASKS."""

from relieve_app.conf import ADDED_ALIAS, BACKEND, add_backend_if_missing, backend_alias

IMMEDIATE = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}


def test_a_project_without_a_relieve_backend_gets_one_added(settings):
    settings.TASKS = IMMEDIATE
    add_backend_if_missing()
    assert settings.TASKS["default"] == IMMEDIATE["default"]  # the project's own stays as it was
    assert settings.TASKS[ADDED_ALIAS] == {"BACKEND": BACKEND, "QUEUES": ["default", "mail"]}
    assert backend_alias() == ADDED_ALIAS


def test_a_project_that_names_the_backend_keeps_its_own_alias(settings):
    settings.TASKS = {"jobs": {"BACKEND": BACKEND, "QUEUES": ["mail"]}}
    add_backend_if_missing()
    assert list(settings.TASKS) == ["jobs"]
    assert backend_alias() == "jobs"
