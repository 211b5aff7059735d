"""Which queues runrelieve serves, and with how many children each."""

import pytest
from django.core.management import CommandError, call_command

from relieve_app.tasks.master import queues


def test_every_queue_of_the_backend_is_served_with_the_workers_count_by_default(settings):
    settings.RELIEVE_QUEUES = ""
    assert queues.sizes(None) == {"default": None, "mail": None}


def test_the_option_wins_over_the_setting(settings):
    settings.RELIEVE_QUEUES = "mail=4, default=2"
    assert queues.sizes(["mail=1"]) == {"default": (2, 2), "mail": (1, 1)}


def test_a_range_gives_the_children_a_queue_starts_with_and_the_most_it_grows_to(settings):
    settings.RELIEVE_QUEUES = "mail=2-16"
    assert queues.sizes(None) == {"default": None, "mail": (2, 16)}
    assert queues.sizes(["default= 1-1 "]) == {"default": (1, 1), "mail": (2, 16)}


@pytest.mark.parametrize(
    "item",
    [
        "mail",
        "mail=",
        "=2",
        "mail=0",
        "mail=-1",
        "mail=two",
        "mail=4-",
        "mail=-4",
        "mail=0-4",
        "mail=8-4",
        "mail=1-2-3",
    ],
)
def test_a_malformed_size_says_how_to_write_it(settings, item):
    settings.RELIEVE_QUEUES = ""
    with pytest.raises(queues.QueueError, match=r"should look like mail=4.*mail=4-16"):
        queues.sizes([item])


def test_a_queue_no_backend_has_is_refused_with_the_ones_it_has(settings):
    settings.RELIEVE_QUEUES = "reports=2"
    with pytest.raises(queues.QueueError, match=r"reports.*QUEUES in TASKS are: default, mail"):
        queues.sizes(None)


def test_runrelieve_turns_it_into_a_command_error(settings, tmp_path):
    settings.RELIEVE_QUEUES = ""
    settings.RELIEVE_ALLOW_DEV_MAIL = True  # tests run with DEBUG off and in-memory mail, refused before this
    with pytest.raises(CommandError, match="no task backend has the queue"):
        call_command("runrelieve", "--queue", "nope=1", "--socket", str(tmp_path / "s.sock"))
