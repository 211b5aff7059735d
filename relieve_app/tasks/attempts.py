"""How an attempt ended, as one entry of the ledger: the same rules for the master and for a child
that finishes a task after its master stopped (``failsafe.py``), so the row tells one story.

An entry is ``(kind, payload, event, retry_in)`` (``taskstore.finish``): a success with its value, or
a failure with its error, retried after ``retry_in`` seconds while attempts remain.
"""

from relieve_app.pool import RemoteError


def retry_after(attempts, retry_delay, max_retry_delay):
    """Seconds before the next attempt: doubling from ``retry_delay``, at most ``max_retry_delay``."""
    return min(retry_delay * 2 ** max(attempts - 1, 0), max_retry_delay)


def answered(job, answer, max_attempts, backoff):
    """The entry for a child's answer to ``run(job)`` (``tasks/runner.py``)."""
    if not isinstance(answer, dict) or "ok" not in answer:
        return failed(job, error(RemoteError, f"unreadable answer {answer!r:.200}"), max_attempts, backoff)
    if answer["ok"]:
        return "success", answer.get("value"), None, None
    retry, delay = bool(answer.get("retry")), answer.get("delay")
    return failed(job, answer.get("error") or {}, max_attempts, backoff, retry=retry, delay=delay)


def failed(job, problem, max_attempts, backoff, event="error", retry=False, delay=None):
    """The entry of a failed attempt: retried after ``backoff(attempt)`` (or the task's ``delay``)
    while the task's attempts (else ``max_attempts``) remain, else FAILED saying it gave up."""
    attempt = job["attempt"]
    limit = job.get("max_attempts") or max_attempts
    retry_in = None
    if retry and attempt < limit:
        retry_in = backoff(attempt) if delay is None else float(delay)
    elif retry and attempt >= limit:
        problem = {**problem, "message": f"{problem.get('message', '')} (gave up after {attempt} attempts)"}
    if not problem.get("traceback"):  # the master's own reasons (a timeout, a lost child) have none
        problem = {**problem, "traceback": reason(problem)}
    return "failure", problem, event, retry_in


def error(kind, message):
    return {
        "exception_class_path": f"{kind.__module__}.{kind.__qualname__}",
        "message": message,
        "traceback": "",
    }


def reason(problem):
    """The last line Python's own traceback would print, so ``result.errors[i].traceback`` says why."""
    path = problem.get("exception_class_path") or "Exception"
    name = path.removeprefix("builtins.")
    message = problem.get("message", "")
    return f"{name}: {message}\n" if message else f"{name}\n"
