"""The system check of RELIEVE_SCHEDULE: one Error per bad entry, naming it and what is wrong."""

from django.core import checks

from relieve_app.tasks.schedule.entries import configured, problems


def check_schedule(app_configs, **kwargs):
    schedule = configured()
    if not isinstance(schedule, dict):
        return [
            checks.Error(
                f"RELIEVE_SCHEDULE must be a dict of name to entry, not {type(schedule).__name__}.",
                obj="settings.RELIEVE_SCHEDULE",
                id="relieve_app.E020",
            )
        ]
    return [
        checks.Error(
            f"RELIEVE_SCHEDULE[{name!r}]: {'; '.join(found)}.",
            obj=f"settings.RELIEVE_SCHEDULE[{name!r}]",
            id="relieve_app.E020",
        )
        for name, spec in schedule.items()
        if (found := problems(name, spec))
    ]
