"""A small soak: gunicorn, runrelieve and a refusing SMTP server under load, children and master killed.

The full run is ``python bench/soak.py`` (5,000 posts); this one keeps its shape at a few hundred.
"""

from collections import Counter
from types import SimpleNamespace

import pytest

from bench.soak import Config, Result, account, run


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_nothing_accepted_is_lost_under_kills_and_an_smtp_outage(tmp_path):
    config = Config(
        posts=300,
        clients=4,
        workers=3,
        kill_every=1.0,
        child_kills=2,
        master_down=0.5,
        smtp_down=1.5,
        call_timeout=2.0,  # the master is frozen 3 s
        db_lock_for=1.0,
        drain_timeout=60,
        folder=tmp_path,
        keep=True,  # pytest removes tmp_path; the logs stay there for a failure to show
    )
    result = run(config)

    assert (result.child_kills, result.master_kills, result.smtp_drops) == (2, 1, 1), result.table()
    assert (result.all_kills, result.freezes, result.db_locks, result.ahead) == (1, 1, 1, 5), result.table()
    assert not result.chaos_error, result.table()
    assert result.accepted == config.posts + config.ahead and not result.not_accepted, result.table()
    assert result.lost == 0 and result.pending == 0, result.table()
    assert result.delivered + result.failed == result.accepted, result.table()
    assert result.locked == 0, result.table()


def test_each_accepted_message_lands_in_exactly_one_row_of_the_table():
    load = SimpleNamespace(accepted={n: f"soak {n}" for n in range(1, 8)}, not_accepted=Counter({500: 1}))
    rows = {
        1: ("sent", "", 1),  # delivered
        2: ("sent", "", 2),  # delivered twice: one duplicate
        3: ("failed", "550 refused (SMTP 550)", 5),  # failed, error kept
        4: ("retrying", "550 refused (SMTP 550)", 2),  # pending, though an attempt failed
        5: ("sent", "", 1),  # the row says sent, the sink never got it: lost
        6: ("failed", "", 5),  # failed with no error: lost
        # 7 has no row: lost
    }
    received = ["soak 1", "soak 2", "soak 2", "soak 99"]

    result = account(Result(Config()), load, rows, received)

    assert result.last_line() == "soak accepted=7 delivered=2 failed=1 pending=1 lost=3 duplicates=1"
    assert (result.failed_without_error, result.strays, result.attempts) == (1, 1, 16)
    assert not result.ok
