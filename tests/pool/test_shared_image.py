"""What the zygote's forks share (``shared_image``): loaded objects immortal, so a child that only
reads them copies none of their pages; and no page of the C heap that only freed memory fills.
Each case runs in a process of its own: making objects immortal changes every object of the
process it runs in."""

import platform
import sys
import sysconfig

import pytest

from relieve_app.pool import shared_image
from tests.pool.conftest import IMMORTAL_HERE, script_report

needs_immortal = pytest.mark.skipif(
    not IMMORTAL_HERE, reason="immortal counts are written on CPython 3.12-3.13 only"
)


def shared_pages(*flags):
    return script_report("shared_pages.py", *flags, timeout=120)


def test_it_is_supported_where_cpython_counts_references_so():
    """Release builds of CPython 3.12 and 3.13, 64-bit, with the GIL: stated here on its own, not
    read from the code it checks."""
    expected = (
        sys.implementation.name == "cpython"
        and sys.version_info[:2] in ((3, 12), (3, 13))
        and sys.maxsize > 2**32
        and not sysconfig.get_config_var("Py_GIL_DISABLED")
        and not hasattr(sys, "gettotalrefcount")
    )
    assert shared_image.supported() is expected


@needs_immortal
def test_an_object_alive_at_the_call_keeps_the_immortal_count_through_new_references():
    seen = shared_pages("probe")
    assert seen == {
        "supported": True,
        "changed_some": True,
        "mortal_count_small": True,
        "count": shared_image.IMMORTAL,
        "count_after_references_dropped": shared_image.IMMORTAL,
        "again_few": True,  # what is immortal already is read, not written again
        "made_after": True,  # objects made later count as usual
    }


@needs_immortal
def test_a_forked_child_reading_what_was_loaded_copies_its_pages_only_when_mortal():
    """The same 200,000 strings, read by a child forked after ``settle`` that settles again before
    it reads them, as a zygote forked from a master does: with their counts immortal the child
    writes none of their pages (the second walk reads what the first wrote); frozen alone, it
    copies most of them."""
    immortal = shared_pages("fork")["copied_mib"]
    mortal = shared_pages("fork", "--mortal")["copied_mib"]
    assert mortal > 6, f"the mortal child copied only {mortal:.1f} MiB"
    assert immortal < mortal / 5, f"immortal {immortal:.1f} MiB against mortal {mortal:.1f}"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_settle_gives_back_the_heap_pages_only_freed_memory_fills():
    """32 MiB freed in the middle of the C heap stay resident (the C library gives back only its
    top) until ``settle`` hands them back, as it does before each fork."""
    seen = script_report("freed_heap.py")
    assert seen["before_mib"] > 30, seen
    assert seen["after_mib"] < seen["before_mib"] - 24, seen


def test_without_malloc_trim_nothing_is_given_back_and_nothing_fails(monkeypatch):
    """A C library without ``malloc_trim`` (musl, macOS): nothing is released, nothing fails."""
    monkeypatch.setattr(shared_image, "_malloc_trim", lambda: None)
    assert shared_image.release_free_memory() is False
