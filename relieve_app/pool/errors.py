"""Errors of the engine; the ones that cross a socket turn into dicts and back."""


class RelieveError(Exception):
    """Base of every error the engine raises on purpose."""


class NotRunning(RelieveError):
    """The task has no live child to talk to."""


class NoTaskAvailable(RelieveError):
    """A worker was asked to dispatch while none of its tasks is running."""


class TaskExited(RelieveError):
    """The child exited while a `get` was waiting for its answer."""

    def __init__(self, name, code):
        super().__init__(f"task {name} exited with code {code} before answering")
        self.name = name
        self.code = code


class CallDropped(RelieveError):
    """The child was asked to drop a call before it started it (``CallableTask.drop``): it never ran."""


class BootError(RelieveError):
    """The child died before it started, most often because its script failed to import."""

    def __init__(self, name, code, reason):
        super().__init__(f"task {name} could not boot (exit code {code}): {reason}")
        self.name = name
        self.code = code
        self.reason = reason


class RemoteError(RelieveError):
    """An exception raised in the child, with the child's type name, message and traceback."""

    def __init__(self, type, message, traceback=""):
        super().__init__(f"{type}: {message}")
        self.type = type
        self.message = message
        self.traceback = traceback

    def __str__(self):
        text = f"{self.type}: {self.message}"
        return f"{text}\n\nRemote traceback:\n{self.traceback}" if self.traceback else text

    def to_dict(self):
        return {"type": self.type, "message": self.message, "traceback": self.traceback}

    @classmethod
    def from_dict(cls, data):
        return cls(
            str(data.get("type", "Error")), str(data.get("message", "")), str(data.get("traceback", ""))
        )

    @classmethod
    def from_exception(cls, exc):
        import traceback

        text = "".join(traceback.format_exception(exc))
        return cls(type(exc).__qualname__, str(exc), text)
