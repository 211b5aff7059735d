"""A runner whose every task kills its own process: a poison message must still end `failed`."""

import os


class Crashing:
    def run(self, job):
        os._exit(70)
