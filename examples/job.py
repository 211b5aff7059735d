"""The cloud example's task, the seed's mail.js in spirit: work, then tell the master by an event."""

import os
import time


class Job:
    def set_channel(self, channel):
        self.channel = channel

    def work(self, number, seconds=0.01):
        time.sleep(seconds)  # stands for the slow part, e.g. talking to an SMTP server
        self.channel.send("info", {"message": f"job {number} done", "pid": os.getpid()})

    def fail(self, number):
        # Nobody awaits a call's outcome: the raise reaches the master as an `error` event.
        raise ValueError(f"job {number} failed")

    def pid(self):
        return os.getpid()
