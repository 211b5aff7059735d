"""A task's reported progress as the admin shows it (a bar) and as a terminal shows it (a line)."""

from django.utils import timezone
from django.utils.html import format_html


def progress_text(progress):
    """ "3 of 10 (30%): copying, at 14:05:02", or "-" for none."""
    if progress is None:
        return "-"
    done, total, note = progress["done"], progress["total"], progress["note"]
    amount = f"{done:g} of {total:g} ({min(done / total, 1):.0%})" if total else f"{done:g} done"
    at = progress["at"]
    when = timezone.localtime(at).strftime("%H:%M:%S") if hasattr(at, "tzinfo") else str(at)
    return f"{amount}{f': {note}' if note else ''}, at {when}"


def progress_html(progress):
    if progress is None:
        return "-"
    if progress["total"]:
        return format_html(
            '<progress class="relieve-progress" value="{}" max="{}"></progress> {}',
            min(progress["done"], progress["total"]),
            progress["total"],
            progress_text(progress),
        )
    return format_html('<progress class="relieve-progress"></progress> {}', progress_text(progress))
