"""Why a master could not start: raised by any part of its start-up, shown by runrelieve as is."""


class StartupError(Exception):
    """The master cannot start; the message says what to change."""
