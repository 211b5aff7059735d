"""A task whose every send kills its own process: a poison message must still end `failed`."""

import os


class Crashing:
    def send_mail(self, job):
        os._exit(70)
