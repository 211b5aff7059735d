"""A zygote forked from its parent (``fork_zygote``), which then shares the parent's pages."""

from tests.pool.conftest import IMMORTAL_HERE, script_report


def preforking(*flags):
    """What tests/pool/scripts/preforking.py saw, run in a process of its own."""
    return script_report("preforking.py", *flags)


def test_a_zygote_forked_from_its_parent_has_what_the_parent_loaded_and_forks_children():
    seen = preforking()
    assert seen == {
        "preforked": True,
        "zygote_parent_is_us": True,
        "zygote_session": True,
        "child_parent_is_zygote": True,
        "child_answers": 5,
        "child_has_what_we_loaded": True,  # the parent's import, shared: nobody imported it again
        "child_sees_it_immortal": IMMORTAL_HERE,  # counting references to it copies no page
        "warm_up_ran_in": [seen["parent"]],  # once, before the fork: not again in the zygote
        "parent": seen["parent"],
    }


def test_a_parent_may_leave_what_it_loaded_mortal():
    seen = preforking("--mortal")
    assert seen["preforked"] and seen["child_has_what_we_loaded"]
    assert seen["child_sees_it_immortal"] is False


def test_a_parent_running_threads_starts_its_zygote_fresh_instead():
    seen = preforking("--thread")
    assert seen["preforked"] is False
    assert seen["child_parent_is_zygote"] and seen["child_answers"] == 5
    assert seen["child_has_what_we_loaded"] is False  # a fresh zygote, which preloaded nothing
    assert seen["child_sees_it_immortal"] is False  # imported by the child itself, after the forks
    assert seen["warm_up_ran_in"] == []  # nor did it run warm-ups: a child imports the module, runs none
