"""A task module that opens a database connection as it is imported, as some projects' modules do.

The master's zygote imports it once for all the children it forks; each child writes, as it
starts, the pid that imported this module, its own pid, and whether the connection opened then
(Django's connections are per thread: that thread's, kept here) is still open in the child.
"""

import os

from django.db import connections

from relieve_app.tasks.runner import Runner as BaseRunner
from relieve_app.tasks.runner import setup_django

setup_django()
OPENED = connections["default"]
OPENED.ensure_connection()
IMPORTED_BY = os.getpid()


class Runner(BaseRunner):
    def start(self):
        with open(os.environ["CONNECTIONS_FILE"], "a") as file:
            file.write(f"{IMPORTED_BY} {os.getpid()} {OPENED.connection is not None}\n")
