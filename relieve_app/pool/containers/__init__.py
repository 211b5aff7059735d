"""Child-side modules a task can load before its script (``containers=[...]``)."""
