"""``python -m relieve_app.pool``: the entry point of every task's child process."""

from .container import main

main()
