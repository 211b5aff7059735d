"""A task module that cannot be imported: what a bad deploy looks like to the master."""

import a_module_that_does_not_exist  # noqa: F401
