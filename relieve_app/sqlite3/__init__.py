"""Django's SQLite backend, with requests first in line for the write lock (``ENGINE``)."""
