"""Tasks held back by their concurrency cap wait for an attempt of their task to end, not for a poll.

The claim answers a held task with ``{"later": ..., "held": "concurrency", "path": ...}``
(``tasks/limits.py``). The master notes it under its task's path; once an attempt of that task run
here has its outcome committed, the held ids of the path are ready again at once. An attempt that
ended on another master frees a place this master learns of by the claim's recheck, a second later.
"""


class Holding:
    """Part of ``Master``: ``_capped`` maps a task path to the ids its cap holds back here."""

    def _hold(self, task_id, answer):
        on_timer = self._later(task_id, max(answer["later"], 0.01))  # else let go, to a later sweep
        if on_timer and answer.get("held") == "concurrency" and answer.get("path"):
            self._capped.setdefault(answer["path"], set()).add(task_id)

    def _free_when_settled(self, job):
        """Once the outcome of ``job`` (a capped task's attempt) is committed, wake what it held."""
        written = self._settling.get(job["id"])
        if not job.get("concurrency") or job["path"] not in self._capped:
            return
        if written is None:
            self._free_capped(job["path"])
        else:
            written.add_done_callback(lambda _future: self._free_capped(job["path"]))

    def _free_capped(self, path):
        for task_id in self._capped.pop(path, ()):
            if task_id in self._known and self._unlater(task_id):
                self._ready(task_id)
