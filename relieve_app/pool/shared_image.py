"""Keep the pages a process loaded before it forks shared with the processes it forks.

A page loaded before a fork stays shared until one of the processes writes to it. Objects loaded
before a fork are mostly never changed again, but every use of one still writes to its page:
the collector marks it, and each new reference adds to its reference count. ``settle()`` stops both:

- ``gc.freeze()`` keeps the objects out of every later collection;
- ``immortalize()`` gives them the reference count CPython treats as immortal (PEP 683), so new
  references leave them alone. CPython makes its own built-in objects immortal this way; PEP 683
  grew out of doing it to a whole loaded heap before forking workers (bpo-40255, "Fixing Copy on
  Writes from reference counting").

It also gives back the C heap's pages that only freed memory fills (``release_free_memory``):
loading leaves such pages behind, and each would otherwise be held by every process of the tree.

An immortal object is never freed: it stays in memory until the process ends, and whatever it
would do when freed (a file's buffer flushed, a finalizer) is not done. Only objects that exist
when ``settle()`` runs are touched. ``immortalize()`` only writes where CPython's own code makes
objects immortal by the same count: release builds of CPython 3.12 and 3.13 on 64-bit machines,
with the GIL. Everywhere else it does nothing.
"""

import functools
import gc
import logging
import sys
import sysconfig
import time

log = logging.getLogger(__name__)

# On 64-bit CPython 3.12 and 3.13, an object whose reference count has all of its low 32 bits set is
# immortal: Py_INCREF and Py_DECREF see it and do not write (Include/object.h, _Py_IMMORTAL_REFCNT).
IMMORTAL = 0xFFFFFFFF


def settle(immortal=True):
    """Before a fork: collect, make what is alive immortal (``immortal``), freeze it, and give the
    C heap's free pages back."""
    gc.collect()
    if immortal:
        started = time.monotonic()
        count = immortalize()
        log.debug("%d objects made immortal in %.0f ms", count, (time.monotonic() - started) * 1000)
    gc.freeze()
    release_free_memory()


def release_free_memory():
    """Give back to the kernel the pages of the C heap that hold only freed memory (glibc's
    ``malloc_trim``); returns whether any went. Kept, each is a page the parent and every child
    hold and none uses; given back, a process that allocates there later gets a fresh page of its
    own, as it would have got a copy. Where the C library has no such call, nothing is done."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


@functools.cache
def _malloc_trim():
    try:
        import ctypes

        return ctypes.CDLL(None).malloc_trim  # glibc's; musl and macOS have none
    except (ImportError, OSError, AttributeError):
        return None


def immortalize():
    """Give every object this process can reach the immortal reference count; returns how many
    it changed (0 where this Python has no such count: see ``supported``).

    It starts from the objects the collector tracks and follows what each refers to, stopping at
    objects already immortal, so a second call reads what the first wrote and writes nothing: the
    pages a parent shared are not copied again. It keeps no set of its own, which would take
    room in the very pages it means to share.
    """
    if not supported():
        return 0
    import ctypes

    count_of = ctypes.c_ssize_t.from_address
    referents = gc.get_referents
    pending = gc.get_objects()
    pending.append(sys.modules)
    changed = 0
    while pending:
        obj = pending.pop()
        count = count_of(id(obj))
        if count.value & IMMORTAL == IMMORTAL:
            continue
        count.value = IMMORTAL
        changed += 1
        pending.extend(referents(obj))
    return changed


def supported():
    """Whether this interpreter keeps its reference counts as ``immortalize`` writes them.

    Checked on this running interpreter, not by version alone: an object made immortal here must
    keep its count through new references and their loss.
    """
    global _supported
    if _supported is None:
        _supported = _layout_known() and _probe()
    return _supported


_supported = None
_PROBE = []  # lives as long as the module: an object the check may make immortal


def _layout_known():
    """An object's count is its first word: not so in a free-threaded build, nor where a debug build
    traces references (two links come first)."""
    return (
        sys.implementation.name == "cpython"
        and sys.version_info[:2] in ((3, 12), (3, 13))
        and sys.maxsize > 2**32
        and not sysconfig.get_config_var("Py_GIL_DISABLED")
        and not hasattr(sys, "gettotalrefcount")  # a debug build
        and not hasattr(sys, "getobjects")  # references traced
    )


def _probe():
    try:
        import ctypes
    except ImportError:  # a Python built without it
        return False
    count = ctypes.c_ssize_t.from_address(id(_PROBE))
    count.value = IMMORTAL
    held = [_PROBE, _PROBE]
    del held
    return sys.getrefcount(_PROBE) == IMMORTAL
