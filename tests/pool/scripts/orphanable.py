"""A child that finishes a call its parent left behind, when its ``orphaned()`` says so."""

import os
import time
from pathlib import Path


class Orphanable:
    keep = True

    def start(self, keep=True):
        self.keep = keep

    def orphaned(self):
        return self.keep

    def work(self, folder):
        """Says it started, waits for the gate, then writes what it did: a long call of a task."""
        folder = Path(folder)
        (folder / "started").write_text(str(os.getpid()))
        deadline = time.monotonic() + 20
        while not (folder / "gate").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        (folder / "done").write_text(str(os.getpid()))
        return "done"
