"""Read-only folders for tests that run as root, whom file modes do not stop: a read-only bind mount
in a private mount namespace (`unshare --mount`) makes writes fail with EROFS for that process alone."""

import functools
import shutil
import subprocess

SCRIPT = 'mount --bind -o ro "$0" "$0" && exec "$@"'
SKIP_REASON = "needs `unshare --mount` (root or user namespaces) to make a folder read-only"


@functools.cache
def can_mount_read_only():
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--mount", "mount", "--bind", "-o", "ro", "/tmp", "/tmp"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def read_only(folder, argv):
    """`argv` run with `folder` read-only."""
    return ["unshare", "--mount", "sh", "-c", SCRIPT, str(folder), *argv]
