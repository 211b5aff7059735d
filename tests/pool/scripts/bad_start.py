"""A script whose start() raises."""


class BadStart:
    def start(self, *arguments):
        raise RuntimeError("start refused")
