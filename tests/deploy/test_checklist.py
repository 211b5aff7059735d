"""The production checklist's settings are the ones `manage.py check --deploy` passes: exactly the
block the page shows, in an environment holding nothing else."""

import re
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "howto" / "production-checklist.md"
MARKER = "% production-env"


def documented_settings():
    """The `.env` lines of the fenced block after the page's marker, as a dict."""
    text = PAGE.read_text()
    assert MARKER in text, f"{PAGE} lost its {MARKER!r} marker"
    block = re.search(r"```ini\n(.*?)```", text[text.index(MARKER) :], re.S).group(1)
    lines = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def check_deploy(settings):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "LANG": "C.UTF-8", **settings}
    argv = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def with_real_key(settings):
    assert settings["SECRET_KEY"].startswith("<"), "the page must not show a usable key"
    return {**settings, "SECRET_KEY": secrets.token_urlsafe(50)}


def test_check_deploy_is_clean_with_the_documented_settings():
    result = check_deploy(with_real_key(documented_settings()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout


def test_the_checklist_names_what_it_must():
    settings = documented_settings()
    for name in ("DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "EMAIL_URL", "RELIEVE_SOCKET"):
        assert name in settings, name
    assert settings["DEBUG"] == "false"
    text = PAGE.read_text()
    for step in ("collectstatic", "migrate", "Several hosts", "The socket's folder"):
        assert step in text, step


def test_check_deploy_fails_without_one_of_them():
    """The check above can fail: drop the HTTPS redirect and Django warns."""
    settings = with_real_key(documented_settings())
    del settings["SECURE_SSL_REDIRECT"]
    result = check_deploy(settings)
    assert result.returncode != 0
    assert "security.W008" in result.stdout + result.stderr
