"""RELIEVE_SCHEDULE: periodic tasks, each due slot enqueued once however many masters tick.

``entries`` reads the setting, ``rules`` turns a rule into slots, ``checks`` reports a bad entry at
start, ``due`` is the masters' write that enqueues due slots, ``listing`` what the admin and
``relieveschedule`` show.
"""
