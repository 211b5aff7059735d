"""The task bench/memory.py runs in a mail child: which of the child's pages are its own, and why.

A child forked from the zygote shares the zygote's pages until it writes to one; the kernel then
gives it a copy. Those copies are most of what a warm child costs. ``probe`` forks once more, and
that grandchild reads the child's memory and page frames from /proc while the child waits, so that
nothing the analysis allocates lands in the pages it measures (the child's own allocations would).
For each page the child holds of its own at an address the zygote maps too, it compares the two
copies eight bytes at a time and names what differs by the live object found there (the objects
are the child's, seen from the grandchild, which has the same memory at the same addresses):

- ``refcount``: the first word of an object, its reference count;
- ``gc``: the two words before a collected object, the collector's links;
- ``body``: any other word of an object (a dict's table, a code object's warmed bytecode...);
- ``outside``: a word in no live object, memory freed since the fork or the allocators' own.

Needs root: the kernel shows page frame numbers (``/proc/<pid>/pagemap``) to root alone.
"""

import bisect
import collections
import ctypes
import gc
import json
import os
import struct
import sys
import traceback

from django.tasks import task

PAGE = 4096
WORD = 8
PFN_MASK = (1 << 55) - 1
GC_HEAD = 16  # bytes of the collector's links before each tracked object (CPython 3.12, 3.13)
DICT_KEYS_AT = 32  # offset of a dict's keys table pointer (PyDictObject.ma_keys)
DICT_SIZE = 48  # sys.getsizeof(dict) counts the dict's own 48 bytes and its table's
LIST_ITEMS_AT, LIST_ALLOCATED_AT = 24, 32  # PyListObject.ob_item, .allocated


@task(queue_name="mail")
def probe():
    """The breakdown of this child's own pages, as a dict (the task's return value)."""
    read_end, write_end = os.pipe()
    child, zygote = os.getpid(), os.getppid()
    pid = os.fork()
    if pid == 0:
        try:
            data = json.dumps(breakdown(child, zygote))
        except BaseException:
            data = json.dumps({"error": traceback.format_exc()})
        os.write(write_end, data.encode())
        os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 1 << 20):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks))


def breakdown(child, zygote):
    objects = live_objects()
    starts = sorted(objects)
    frames, region = page_frames(child)
    inherited, _ = page_frames(zygote)
    copied = sorted(address for address, frame in frames.items() if inherited.get(address, frame) != frame)
    words = collections.Counter()
    bodies = collections.Counter()
    pages = collections.Counter()
    by_mapping = collections.Counter()  # the same pages, by mapping too
    with open(f"/proc/{child}/mem", "rb") as ours, open(f"/proc/{zygote}/mem", "rb") as theirs:
        for address in copied:
            try:
                ours.seek(address)
                mine = ours.read(PAGE)
                theirs.seek(address)
                original = theirs.read(PAGE)
            except OSError:
                continue
            kinds = set()
            for offset in range(0, PAGE, WORD):
                if mine[offset : offset + WORD] != original[offset : offset + WORD]:
                    kind, name = classify(address + offset, starts, objects)
                    words[kind] += 1
                    if kind == "body":
                        bodies[name] += 1
                    kinds.add(kind)
            if kinds <= {"refcount", "gc"}:
                page_kind = "refcounts and collector links only"
            elif kinds == {"outside"}:
                page_kind = "outside live objects only"
            else:
                page_kind = "object contents"
            pages[page_kind] += 1
            by_mapping[f"in {region[address]} where {page_kind} changed"] += 1
    mib = PAGE / 2**20
    return {
        "copied_mb": len(copied) * mib,
        "new_mb": sum(1 for address in frames if address not in inherited) * mib,
        "copied_by_mapping": collections.Counter(region[a] for a in copied).most_common(4),
        "pages_mb": {kind: count * mib for kind, count in pages.most_common()},
        "words": dict(words.most_common()),
        "bodies": bodies.most_common(8),
        "pages_by_mapping_mb": {key: count * mib for key, count in by_mapping.most_common(6)},
    }


def classify(address, starts, objects):
    """(kind, type name) of the word at ``address``: see the module docstring."""
    at = bisect.bisect_right(starts, address) - 1
    if at + 1 < len(starts):
        following = starts[at + 1]
        name, _size, tracked = objects[following]
        if tracked and following - GC_HEAD <= address:
            return "gc", name
    if at >= 0:
        start = starts[at]
        name, size, _tracked = objects[start]
        if address < start + size:
            return ("refcount" if address == start else "body"), name
    return "outside", ""


def live_objects():
    """{address: (type name, size, tracked)} of every object the collector knows and what they hold,
    with the tables dicts and lists keep apart from themselves."""
    gc.unfreeze()  # this grandchild only: frozen objects are hidden from get_objects()
    tracked = gc.get_objects()
    found = {}
    for obj in tracked:
        for item in (obj, *gc.get_referents(obj)):
            if id(item) not in found:
                try:
                    size = sys.getsizeof(item)
                except Exception:
                    size = WORD * 2
                found[id(item)] = (type(item).__name__, size, gc.is_tracked(item))
    for obj in tracked:
        if type(obj) is dict:
            table = ctypes.c_void_p.from_address(id(obj) + DICT_KEYS_AT).value
            size = sys.getsizeof(obj) - DICT_SIZE
            if table and size > 0:
                found.setdefault(table, ("dict table", size, False))
        elif type(obj) is list:
            items = ctypes.c_void_p.from_address(id(obj) + LIST_ITEMS_AT).value
            allocated = ctypes.c_ssize_t.from_address(id(obj) + LIST_ALLOCATED_AT).value
            if items and allocated > 0:
                found.setdefault(items, ("list items", allocated * WORD, False))
    return found


def page_frames(pid):
    """({address: page frame} of each present page of ``pid``'s private writable mappings,
    {address: mapping name})."""
    frames, region = {}, {}
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for line in maps:
            fields = line.split()
            name = fields[5] if len(fields) > 5 else "[anonymous]"
            if not fields[1].startswith("rw") or not fields[1].endswith("p") or name in ("[stack]", "[vvar]"):
                continue
            low, high = (int(part, 16) for part in fields[0].split("-"))
            pagemap.seek(low // PAGE * 8)
            entries = pagemap.read((high - low) // PAGE * 8)
            for n, (entry,) in enumerate(struct.iter_unpack("<Q", entries)):
                if entry >> 63:  # present
                    frames[low + n * PAGE] = entry & PFN_MASK
                    region[low + n * PAGE] = name
    return frames, region
