"""A child that finishes a call its parent left behind, when its ``orphaned()`` says so."""

import os
import time
from pathlib import Path


class Orphanable:
    keep = True
    pause = 0.0

    def __init__(self):
        self.folders = []

    def start(self, keep=True, pause=0.0):
        self.keep, self.pause = keep, pause

    def orphaned(self):
        time.sleep(self.pause)  # a script that takes its time to decide (a database write)
        return self.keep

    def parent_gone(self):
        """Told after ``orphaned()``: notes, beside the first call, which calls had ended by then."""
        if self.folders:
            ended = [folder.name for folder in self.folders if (folder / "done").exists()]
            (self.folders[0] / "parent-gone").write_text(" ".join(ended))

    def work(self, folder):
        """Says it started, waits for the gate, then writes what it did: a long call of a task."""
        folder = Path(folder)
        self.folders.append(folder)
        (folder / "started").write_text(str(os.getpid()))
        deadline = time.monotonic() + 20
        while not (folder / "gate").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        (folder / "done").write_text(str(os.getpid()))
        return "done"
