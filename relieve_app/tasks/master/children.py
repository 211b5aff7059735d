"""The master's children: one CloudWorker per queue, each child watched, its life recorded as events.

With ``preload`` on (RELIEVE_PRELOAD), every child is forked from the master's one zygote, which
has Django set up and the task's module imported: a child killed answers again in milliseconds,
and the children share those pages. The first zygote is forked from the master itself before its
event loop (``server.run``), so the master's own copy of Django is shared too. A reload restarts
the zygote first (reloading.py).
"""

import itertools
import logging

from relieve_app.pool import CallableTask, Zygote
from relieve_app.tasks.store import recorder

log = logging.getLogger(__name__)

MONITOR = "relieve_app.pool.containers.monitor"
SETUP = "relieve_app.tasks.runner:setup_django"
IMPORT_AHEAD = "relieve_app.tasks.lazy_imports:import_ahead"
WARM_UP = "relieve_app.pool.warm_up:run"
CLOSE_CONNECTIONS = "relieve_app.tasks.runner:close_connections"


def preloads(script):
    """What the zygote imports: Django, what Django imports on first use, the monitor, and the
    module of the task's script (a script given as a file is left to each child); then it runs the
    warm-ups they registered and closes any database connection they opened."""
    module = script.partition(":")[0]
    script_module = [] if module.endswith(".py") else [module]
    return [SETUP, IMPORT_AHEAD, MONITOR, *script_module, WARM_UP, CLOSE_CONNECTIONS]


class Children:
    """Part of ``Master``: starting the children and hearing what they go through."""

    def _spawn_children(self):
        if self.options.preload and self.zygote is None:
            self.zygote = Zygote(
                preloads(self.options.script), preforked=self.preforked, immortal=self.options.immortal
            )
            self.preforked = None
        for lane in self.lanes.values():
            for _ in range(lane.size):
                self._add_child(lane)

    def _add_child(self, lane):
        """A new child of ``lane``, not started yet, named by the lowest number free in its queue."""
        index = next(n for n in itertools.count() if f"{lane.name}{n}" not in lane.pool.tasks)
        child = CallableTask(
            self.options.script,
            restart=True,
            name=f"{lane.name}{index}",
            containers=[MONITOR],
            zygote=self.zygote,
        )
        self._watch(lane, child)
        lane.pool.add(child)
        return child

    def _watch(self, lane, child):
        name = child.name
        child.on("error", lambda *args: self._on_child_error(name, *args))
        child.on("start", lambda at: self._on_lifecycle(name, "start", {"pid": child.pid, "at": at}))
        child.on("exit", lambda code: self._on_lifecycle(name, "exit", {"code": code}))
        child.on("restart", lambda: self._on_lifecycle(name, "restart", {"restarts": child.restarts}))
        child.on("start", lambda _at: lane.restarted(child))
        child.on("start", lambda _at: lane.wake.set())
        child.on("usage", lambda usage: self._on_usage(lane, child, usage))

    def _on_child_error(self, name, message=None, stack=None):
        payload = message if isinstance(message, dict) else {"message": str(message), "stack": stack}
        log.error("child %s: %s", name, payload.get("message"))
        self.recorder.record(recorder.add_event, name, "error", payload)

    def _on_lifecycle(self, name, event, payload):
        if event == "exit" and name in self._retiring:  # its queue shrinks (scaling.py)
            log.info(
                "child %s stopped: its queue has more children than it needs (code %s)", name, payload["code"]
            )
        elif event == "exit" and self.is_recycling(name):  # a planned replacement: a reload or a recycle
            log.info("child %s stopped to be replaced (code %s)", name, payload["code"])
        elif event == "exit" and not self._stopping.is_set():
            log.warning("child %s exited with code %s; restarting", name, payload["code"])
        elif event == "start":
            log.info("child %s started (pid %s)", name, payload["pid"])
        self.recorder.record(recorder.add_event, name, event, payload)
