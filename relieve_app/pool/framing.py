"""The wire format shared by the Channel and the master's Unix-socket protocol.

One frame::

    +----------------------+-------------------------------+
    | length: 4 bytes, big | payload: `length` bytes of    |
    | endian, unsigned     | UTF-8 JSON (one object)       |
    +----------------------+-------------------------------+

Frames larger than ``max_frame`` are refused on both sides. The decoder skips
an oversized or malformed frame and reports it, so one bad frame never costs
the frames after it.
"""

import json
import struct

HEADER = struct.Struct("!I")
MAX_FRAME = 1 << 20  # 1 MiB: far above any event we send, far below a memory problem


class FrameError(ValueError):
    """A frame that cannot be read: too large, not JSON, or not an object."""


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode(obj, *, max_frame=MAX_FRAME):
    """Frame one JSON object; raises FrameError when it is too large or not JSON."""
    try:
        payload = _ENCODER.encode(obj).encode()
    except (TypeError, ValueError) as exc:
        raise FrameError(f"not JSON serialisable: {exc}") from None
    if len(payload) > max_frame:
        raise FrameError(f"frame of {len(payload)} bytes exceeds the {max_frame}-byte cap")
    return HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Turns a byte stream into frames; ``feed`` returns decoded objects and errors in order."""

    def __init__(self, *, max_frame=MAX_FRAME):
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._skip = 0  # bytes still to drop from an oversized frame

    @property
    def pending(self):
        """Bytes received that do not yet make a whole frame."""
        return len(self._buffer) + self._skip

    def feed(self, data):
        """Return a list of decoded dicts and FrameError instances, in stream order."""
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        self._buffer += data
        out = []
        buffer = self._buffer
        offset = 0
        size = HEADER.size
        while len(buffer) - offset >= size:
            (length,) = HEADER.unpack_from(buffer, offset)
            if length > self.max_frame:
                out.append(FrameError(f"frame of {length} bytes exceeds the {self.max_frame}-byte cap"))
                available = len(buffer) - offset - size
                if available >= length:
                    offset += size + length
                    continue
                self._skip = length - available
                offset = len(buffer)
                break
            end = offset + size + length
            if end > len(buffer):
                break
            out.append(_decode_payload(bytes(buffer[offset + size : end])))
            offset = end
        if offset:
            del buffer[:offset]
        return out


def _decode_payload(payload):
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        return FrameError(f"frame is not UTF-8 JSON: {exc}")
    except RecursionError:
        return FrameError("frame is JSON nested too deep to read")
    if not isinstance(obj, dict):
        return FrameError(f"frame holds a {type(obj).__name__}, expected an object")
    return obj
