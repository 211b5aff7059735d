"""A script that cannot be imported."""

raise ImportError("broken_import needs a module that is missing")
