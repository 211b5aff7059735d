"""Tasks that fail on purpose, and count their attempts in a file, for ``@task(retry_on=...)``."""

from pathlib import Path

from django.tasks import task


def _attempt(path):
    file = Path(path)
    count = int(file.read_text() or 0) + 1 if file.exists() else 1
    file.write_text(str(count))
    return count


@task(retry_on=(ConnectionError, "smtplib.SMTPServerDisconnected"), max_attempts=4, retry_delay=0.05)
def flaky(path, failures):
    """Raises a ConnectionError subclass ``failures`` times, then returns the attempt it succeeded on."""
    count = _attempt(path)
    if count <= failures:
        raise ConnectionRefusedError(f"attempt {count} refused")
    return count


@task(retry_on=(ConnectionError,), max_attempts=4, retry_delay=0.05)
def wrong_kind(path):
    """Raises an exception retry_on does not name: fails at once."""
    _attempt(path)
    raise ValueError("not a connection problem")
