"""Runnable examples of the engine: ``python -m examples.<name>``.

- ``socket_server``: the master accepts TCP (or Unix) connections and hands each socket to a child,
  which answers the client itself (``heavy.py``).
- ``queue_batch``: a QueueWorker runs one short-lived child per chunk of data (``chunk.py``).
- ``cloud``: four long-running children, their ``info`` and ``error`` events, and one restart
  after a SIGKILL (``job.py``).
"""
