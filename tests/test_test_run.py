"""A test run cleans up after itself: nothing of its test database stays in var/ once it ends."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="the lock is SQLite's; this runs in the SQLite pass",
)
def test_a_run_that_started_a_master_leaves_no_lock_file_beside_its_test_database(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    one_master = "tests/e2e/test_tasks.py::test_async_task_is_awaited_and_its_context_counts_attempts"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", one_master],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == []
