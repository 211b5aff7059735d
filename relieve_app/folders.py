"""The project's own folder for files (``VAR_DIR``, var/ by default) is made when a default uses it.

Settings only name paths; importing them writes nothing, so a deployment whose tree is read-only
starts as long as its database and socket are elsewhere. The socket's folder is made by the master
(endpoint.py); mail and cache backends make theirs; SQLite makes its file but not its folder.
"""

import os
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def make_default_folders():
    """Create VAR_DIR when a SQLite database (or its test copy) lives in it."""
    var_dir = getattr(settings, "VAR_DIR", None)
    if var_dir is None or Path(var_dir).is_dir():
        return
    if any(Path(path).parent == Path(var_dir) for path in _sqlite_files()):
        try:
            Path(var_dir).mkdir(mode=0o755, exist_ok=True)  # 0755: a socket may live here
        except OSError as exc:
            reason = "a file is in the way" if isinstance(exc, FileExistsError) else exc.strerror
            raise ImproperlyConfigured(
                f"cannot create the folder {var_dir} for the SQLite database: {reason}. Create it, or set "
                "DATABASE_URL to a database elsewhere (e.g. sqlite:////srv/relieve/db.sqlite3)."
            ) from exc


def _sqlite_files():
    for database in settings.DATABASES.values():
        if not database.get("ENGINE", "").endswith("sqlite3"):
            continue
        for name in (database.get("NAME"), database.get("TEST", {}).get("NAME")):
            if name and str(name) != ":memory:" and not str(name).startswith("file:"):
                yield os.fspath(name)
