"""deploy/systemd/: the units pass `systemd-analyze verify` and keep the promises the deploying page
makes of them (one user, the socket's folder, a restart policy, relievestatus as the health check)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
INSTALLED = "/srv/relieve"  # where the units expect the checkout and its .venv


def systemd_analyze():
    found = shutil.which("systemd-analyze") or (
        "/usr/bin/systemd-analyze" if os.access("/usr/bin/systemd-analyze", os.X_OK) else None
    )
    if found:
        return found
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("systemd-analyze is missing and CI needs it: apt-get install systemd (.ci/run does)")
    pytest.skip("systemd-analyze is missing (Debian/Ubuntu: apt-get install systemd)")


def directives(path):
    """Each `Key=value` of a unit, as a list of values per key (Environment= may repeat)."""
    found = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def installed_copy(tmp_path):
    """The units with /srv/relieve pointing at a tree whose .venv has the binaries they run:
    verify refuses an ExecStart= whose program does not exist."""
    tree = tmp_path / "srv"
    (tree / ".venv" / "bin").mkdir(parents=True)
    for program in ("python", "gunicorn"):
        (tree / ".venv" / "bin" / program).symlink_to(Path(sys.executable).with_name(program))
    units = tmp_path / "units"
    units.mkdir()
    for unit in UNITS.iterdir():
        (units / unit.name).write_text(unit.read_text().replace(INSTALLED, str(tree)))
    return sorted(units.iterdir())


def verify(units):
    argv = [systemd_analyze(), "verify", "--man=no", *map(str, units)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_every_unit_passes_systemd_analyze_verify(tmp_path):
    units = installed_copy(tmp_path)
    assert {unit.name for unit in units} >= {"relieve.service", "relieve-web.service"}
    result = verify(units)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # not even an unknown key, which verify only warns of


def test_verify_catches_a_misspelt_key(tmp_path):
    """The check above can fail: verify reports a key systemd would ignore."""
    units = installed_copy(tmp_path)
    master = next(unit for unit in units if unit.name == "relieve.service")
    master.write_text(master.read_text().replace("Restart=on-failure", "Restat=on-failure"))
    assert "Unknown key" in verify([master]).stderr


def test_web_and_master_run_as_one_user_and_share_the_socket_s_folder():
    web, master = directives(UNITS / "relieve-web.service"), directives(UNITS / "relieve.service")
    assert web["User"] == master["User"] and web["Group"] == master["Group"]
    assert master["RuntimeDirectory"] == ["relieve"]
    socket = "RELIEVE_SOCKET=/run/relieve/relieve.sock"
    assert socket in web["Environment"] and socket in master["Environment"]
    for unit in (web, master):
        assert unit["Restart"] == ["on-failure"]
    assert web["KillMode"] == ["mixed"]  # SIGTERM to the main process alone: graceful stops
    # The master's children that finish a task after it stopped (RELIEVE_FAILSAFE) must outlive it: with
    # "mixed" systemd SIGKILLs what is left in the control group once the main process exits.
    assert master["KillMode"] == ["process"]


def test_the_master_is_checked_with_relievestatus():
    master = directives(UNITS / "relieve.service")
    assert "relievestatus" in master["ExecStartPost"][0]
    health = directives(UNITS / "relieve-health.service")
    assert "manage.py relievestatus" in health["ExecStart"][0]
    assert health["User"] == master["User"]  # the socket is 0600: only its owner may ask it
    assert health["OnFailure"] == ["relieve-restart.service"]
    assert "restart relieve.service" in directives(UNITS / "relieve-restart.service")["ExecStart"][0]
    assert directives(UNITS / "relieve-health.timer")["OnUnitActiveSec"] == ["1min"]
