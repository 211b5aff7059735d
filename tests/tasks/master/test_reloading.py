"""The stat watcher behind `runrelieve --reload`: .py files that change, appear or go, and nothing else."""

import os

from relieve_app.tasks.master.reloading import StatWatcher


def touch(path, mtime):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    os.utime(path, ns=(mtime, mtime))


def test_changed_added_and_removed_python_files_are_reported(tmp_path):
    touch(tmp_path / "app" / "views.py", 1_000)
    touch(tmp_path / "app" / "models.py", 1_000)
    watcher = StatWatcher(tmp_path)
    assert watcher.changed() == []

    touch(tmp_path / "app" / "views.py", 2_000)
    touch(tmp_path / "app" / "forms.py", 2_000)
    (tmp_path / "app" / "models.py").unlink()

    assert watcher.changed() == sorted(
        str(tmp_path / "app" / name) for name in ("forms.py", "models.py", "views.py")
    )
    assert watcher.changed() == []


def test_other_files_and_tool_folders_are_ignored(tmp_path):
    watcher = StatWatcher(tmp_path)
    touch(tmp_path / "notes.txt", 5)
    touch(tmp_path / ".venv" / "lib" / "site.py", 5)
    touch(tmp_path / "var" / "cache.py", 5)
    touch(tmp_path / ".git" / "hook.py", 5)
    touch(tmp_path / "app" / "__pycache__" / "x.py", 5)
    assert watcher.changed() == []
