"""A script made of module-level functions: the module itself is the target."""

import os

channel = None
started_with = []


def set_channel(c):
    global channel
    channel = c


def start(*arguments):
    started_with.extend(arguments)


def multiply(a, b):
    return a * b


def pid():
    return os.getpid()


def arguments():
    return started_with
