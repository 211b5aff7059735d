"""A mail backend nothing imports at start-up: ``lazy_imports.import_ahead`` is what brings it in."""

from django.core.mail.backends.locmem import EmailBackend as LocmemBackend


class EmailBackend(LocmemBackend):
    pass
