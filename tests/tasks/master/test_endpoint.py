"""Endpoint.check(): what is wrong with the socket path is said before any child starts, with the fix;
and requests that want no reply."""

import asyncio
import os

import pytest

from relieve_app.tasks import client
from relieve_app.tasks.master.endpoint import MAX_SOCKET_PATH, Endpoint
from relieve_app.tasks.master.errors import StartupError


def check(path):
    Endpoint(path, operations=None).check()


def test_a_missing_folder_that_can_be_created_passes(tmp_path):
    check(tmp_path / "new" / "deeper" / "r.sock")


def test_a_file_as_the_socket_folder_says_so(tmp_path):
    (tmp_path / "afile").write_text("")

    with pytest.raises(
        StartupError, match=r"afile is a file, not a folder; fix that or choose another --socket"
    ):
        check(tmp_path / "afile" / "r.sock")


def test_a_file_further_up_says_which_one(tmp_path):
    (tmp_path / "afile").write_text("")

    with pytest.raises(
        StartupError, match=rf"cannot put the socket in {tmp_path}/afile/sub: {tmp_path}/afile is a file"
    ):
        check(tmp_path / "afile" / "sub" / "r.sock")


def test_a_broken_link_as_the_folder_says_so(tmp_path):
    os.symlink(tmp_path / "nowhere", tmp_path / "link")

    with pytest.raises(StartupError, match="is a broken link, not a folder"):
        check(tmp_path / "link" / "r.sock")


def test_a_folder_as_the_socket_path_says_to_name_the_file(tmp_path):
    with pytest.raises(StartupError, match=rf"{tmp_path} is a folder; .* e\.g\. {tmp_path}/relieve\.sock"):
        check(tmp_path)


def test_a_path_too_long_for_af_unix_says_so(tmp_path):
    with pytest.raises(StartupError, match=f"longer than {MAX_SOCKET_PATH} bytes"):
        check(tmp_path / ("x" * 120) / "r.sock")


class Taker:
    """Operations that note each submitted id."""

    def __init__(self):
        self.taken = []

    def handle_submit(self, id):
        self.taken.append(id)
        return {"queued": id}


def test_a_burst_announced_without_waiting_is_taken_whole_though_its_client_is_gone(tmp_path, settings):
    path = tmp_path / "r.sock"
    settings.RELIEVE_SOCKET = str(path)
    operations = Taker()
    ids = list(range(1, 20_001))  # far more than one read of the socket

    async def main():
        endpoint = Endpoint(path, operations)
        await endpoint.listen()
        try:
            assert await asyncio.to_thread(client.announce, [(task_id, {}) for task_id in ids])
            for _ in range(500):
                if len(operations.taken) == len(ids):
                    break
                await asyncio.sleep(0.01)
        finally:
            endpoint.close()

    asyncio.run(main())
    assert operations.taken == ids
