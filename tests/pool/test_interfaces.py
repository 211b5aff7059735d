"""Logger: a child's stdout and stderr lines in files, rotated by size or by time."""

import logging.handlers
import signal

import pytest

from relieve_app.pool import Logger


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def make_logger():
    """Loggers built with this close their files when the test ends, whatever happened."""
    made = []

    def make(*args, **kwargs):
        made.append(Logger(*args, **kwargs))
        return made[-1]

    yield make
    for logger in made:
        logger.close()


def test_stdout_and_stderr_lines_go_to_their_files(pool, run, tmp_path, make_logger):
    logger = make_logger(tmp_path / "logs" / "{name}.out", tmp_path / "logs" / "{name}.err")

    async def scenario():
        task = pool.callable(name="talker", interfaces=[logger])
        await pool.wait(task.start())
        await pool.wait(task.get("say", "to stdout"))
        await pool.wait(task.get("say", "to stderr", "stderr"))
        await pool.wait(task.get("say", "again", "stdout", 2))
        out, err = tmp_path / "logs" / "talker.out", tmp_path / "logs" / "talker.err"
        await pool.eventually(lambda: lines(out) == ["to stdout", "again", "again"])
        await pool.eventually(lambda: lines(err) == ["to stderr"])

    run(scenario())


def test_without_a_stderr_path_both_streams_share_one_file(pool, run, tmp_path, make_logger):
    logger = make_logger(tmp_path / "{name}.log")

    async def scenario():
        task = pool.callable(name="shared", interfaces=[logger])
        await pool.wait(task.start())
        await pool.wait(task.get("say", "out"))
        await pool.wait(task.get("say", "err", "stderr"))
        await pool.eventually(lambda: sorted(lines(tmp_path / "shared.log")) == ["err", "out"])

    run(scenario())


def test_a_boot_failure_traceback_lands_in_the_stderr_file(pool, run, tmp_path):
    from relieve_app.pool import BootError

    logger = Logger(tmp_path / "out.log", tmp_path / "err.log")

    async def scenario():
        task = pool.script("broken_import.py", interfaces=[logger])
        with pytest.raises(BootError):
            await pool.wait(task.start())
        await pool.eventually(
            lambda: "ImportError: broken_import needs a module that is missing" in lines(tmp_path / "err.log")
        )

    run(scenario())


def test_one_file_lives_across_restarts(pool, run, tmp_path, make_logger):
    logger = make_logger(tmp_path / "{name}.log")

    async def scenario():
        task = pool.callable(name="restarted", interfaces=[logger])
        await pool.wait(task.start())
        await pool.wait(task.get("say", "first child"))
        await pool.wait(task.restart())
        await pool.wait(task.get("say", "second child"))
        await pool.eventually(lambda: lines(tmp_path / "restarted.log") == ["first child", "second child"])

    run(scenario())


def test_rotation_by_size_keeps_backups(pool, run, tmp_path, make_logger):
    logger = make_logger(tmp_path / "{name}.log", max_bytes=200, backup_count=3)
    path = tmp_path / "rotated.log"

    async def scenario():
        task = pool.callable(name="rotated", interfaces=[logger])
        await pool.wait(task.start())
        await pool.wait(task.get("say", "x" * 39, "stdout", 40))  # 40 lines of 40 bytes: 1600 bytes
        backups = [tmp_path / f"rotated.log.{i}" for i in (1, 2, 3)]
        await pool.eventually(lambda: all(b.exists() for b in backups) and len(lines(path)) == 4)
        assert not (tmp_path / "rotated.log.4").exists()
        for file in [path, *backups]:
            assert file.stat().st_size <= 200
            assert set(lines(file)) == {"x" * 39}

    run(scenario())


def test_a_line_too_long_to_log_does_not_stop_the_logging(pool, run, tmp_path, make_logger):
    logger = make_logger(tmp_path / "{name}.log")

    async def scenario():
        task = pool.callable(name="long", interfaces=[logger])
        await pool.wait(task.start())
        # far past asyncio's 64 KiB line limit, and past what the pipe holds while nobody reads
        await pool.wait(task.get("say", "x" * 200_000, "stdout", 3))
        await pool.wait(task.get("say", "after the long lines"))
        await pool.eventually(lambda: "after the long lines" in lines(tmp_path / "long.log"))
        assert "[relieve: a line too long to log was dropped]" in lines(tmp_path / "long.log")
        assert await pool.wait(task.stop()) == -signal.SIGTERM

    run(scenario())


def test_handlers_follow_the_rotation_option(tmp_path, make_logger):
    by_time = make_logger(tmp_path / "t.log", when="S", interval=2, backup_count=4)
    by_size = make_logger(tmp_path / "s.log", max_bytes=1000)
    timed = by_time.handler(str(tmp_path / "t.log"))
    assert isinstance(timed, logging.handlers.TimedRotatingFileHandler)
    assert timed.when == "S" and timed.interval == 2 and timed.backupCount == 4
    sized = by_size.handler(str(tmp_path / "s.log"))
    assert isinstance(sized, logging.handlers.RotatingFileHandler)
    assert sized.maxBytes == 1000
    assert by_size.handler(str(tmp_path / "s.log")) is sized  # one handler per file


def test_rotating_by_size_and_by_time_at_once_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        Logger(tmp_path / "x.log", max_bytes=100, when="S")
