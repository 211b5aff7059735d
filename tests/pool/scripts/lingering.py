"""A child that leaves a grandchild holding its channel: its exit is drained for EXIT_DRAIN seconds."""

import os
import time


def start(*arguments):
    if os.fork() == 0:  # the grandchild keeps the inherited channel open, then goes quietly
        time.sleep(3)
        os._exit(0)
