"""bench/memory_probe.py names each changed word of a page by the live object found there."""

from bench.memory_probe import GC_HEAD, classify

# Two objects: a collected one (16 bytes of collector links before it) and an untracked one.
OBJECTS = {0x1000: ("dict", 48, True), 0x2000: ("str", 64, False)}
STARTS = sorted(OBJECTS)


def test_the_first_word_of_an_object_is_its_reference_count():
    assert classify(0x1000, STARTS, OBJECTS) == ("refcount", "dict")
    assert classify(0x2000, STARTS, OBJECTS) == ("refcount", "str")


def test_the_words_before_a_collected_object_are_the_collectors_links():
    assert classify(0x1000 - GC_HEAD, STARTS, OBJECTS) == ("gc", "dict")
    assert classify(0x1000 - 8, STARTS, OBJECTS) == ("gc", "dict")
    assert classify(0x2000 - 8, STARTS, OBJECTS) == ("outside", "")  # str is not collected: no links


def test_the_other_words_of_an_object_are_its_body_and_past_its_end_is_outside():
    assert classify(0x1000 + 8, STARTS, OBJECTS) == ("body", "dict")
    assert classify(0x1000 + 40, STARTS, OBJECTS) == ("body", "dict")
    assert classify(0x1000 + 48, STARTS, OBJECTS) == ("outside", "")
    assert classify(0x0800, STARTS, OBJECTS) == ("outside", "")
