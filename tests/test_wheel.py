"""The app as a stranger gets it: a wheel, a fresh virtualenv, a fresh `django-admin startproject`.

The project gets the two lines the README names and nothing else of the app's; then `migrate`,
`runrelieve` and `runserver` run as real processes, a form post goes through the CSRF check and the
redirect, and the mail reaches a real SMTP server. Only PyPI is used, through pip (with its cache),
with requirements.txt as constraints so the versions are the tested ones.

    .venv/bin/pytest -m wheel
"""

import http.cookiejar
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.processes import stop_all

ROOT = Path(__file__).resolve().parent.parent
LEFT_OUT = ("project/", "tests/", "bench/", "manage.py", "templates/base.html")

pytestmark = pytest.mark.wheel


def run(argv, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """Built from a copy of the sources, so the build leaves nothing in the working tree."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".venv", "var", ".git", "build", "dist", "*.egg-info")
    )
    run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-w", str(work / "dist")])
    [built] = (work / "dist").glob("relieve_django-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    path = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", str(path)])  # no --system-site-packages: only what the wheel pulls
    run([path / "bin/python", "-m", "pip", "install", "-c", constraints(path.parent), wheel])
    return path


def constraints(where):
    """requirements.txt as pip constraints, which take no extras: psycopg[binary]==x is psycopg==x."""
    pins = re.sub(r"\[[^\]]*\]", "", (ROOT / "requirements.txt").read_text())
    path = where / "constraints.txt"
    path.write_text(pins)
    return path


def test_the_wheel_holds_the_app_alone(wheel):
    names = zipfile.ZipFile(wheel).namelist()

    assert {name.split("/")[0] for name in names} == {
        "relieve_app",
        wheel.name.split("-py3")[0] + ".dist-info",
    }
    for needed in (
        "relieve_app/migrations/0001_initial.py",
        "relieve_app/templates/relieve_app/contact.html",
        "relieve_app/templates/relieve_app/thanks.html",
        "relieve_app/static/relieve_app/outcome.js",
        "relieve_app/management/commands/runrelieve.py",
    ):
        assert needed in names
    assert not [name for name in names if name.startswith(LEFT_OUT)]
    metadata = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-py3')[0]}.dist-info/METADATA").decode()
    for requirement in ("Requires-Dist: Django", "Requires-Dist: Markdown", "Requires-Dist: nh3"):
        assert requirement in metadata


def start_project(venv, where, smtp_sink):
    """`django-admin startproject`, plus the two lines, plus where the project's own mail goes."""
    run([venv / "bin/django-admin", "startproject", "mysite", str(where)], env=clean_env(venv))
    settings = where / "mysite" / "settings.py"
    text = settings.read_text()
    text = text.replace("'django.contrib.staticfiles',", "'django.contrib.staticfiles',\n    'relieve_app',")
    text = re.sub(
        r"MAILERS = \{.*?\n\}\n",
        "MAILERS = {'default': {'BACKEND': 'django.core.mail.backends.smtp.EmailBackend', "
        f"'OPTIONS': {{'host': '{smtp_sink.host}', 'port': {smtp_sink.port}, 'timeout': 5}}}}}}\n",
        text,
        flags=re.DOTALL,
    )
    settings.write_text(text)
    urls = where / "mysite" / "urls.py"
    text = urls.read_text().replace("from django.urls import path", "from django.urls import include, path")
    urls.write_text(
        text.replace(
            "    path('admin/', ", "    path('contact/', include('relieve_app.urls')),\n    path('admin/', "
        )
    )
    assert "'relieve_app'," in settings.read_text() and "include('relieve_app.urls')" in urls.read_text()


def clean_env(venv):
    """Nothing of this repository's environment: no settings module, no database or socket from it."""
    ours = ("DJANGO_", "DATABASE_URL", "EMAIL_URL", "CACHE_URL", "RELIEVE_", "CONTACT_", "PYTHONPATH")
    env = {key: value for key, value in os.environ.items() if not key.startswith(ours)}
    return {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "PYTHONUNBUFFERED": "1"}


class Browser:
    """Cookies kept, redirects reported rather than followed, so the test sees the 303."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    def __init__(self, base):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), self.NoRedirect()
        )

    def open(self, path, data=None, headers=None):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.base + path, body, headers or {})
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read().decode()


def wait_for(predicate, what, process_logs, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := predicate():
                return value
        except OSError:
            pass
        time.sleep(0.2)
    logs = "\n".join(f"--- {path.name}\n{path.read_text()}" for path in process_logs)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")


def test_a_fresh_project_with_two_lines_sends_the_contact_mail(venv, tmp_path, smtp_sink):
    where = tmp_path / "site"
    where.mkdir()
    start_project(venv, where, smtp_sink)
    env = clean_env(venv)
    python = str(venv / "bin/python")
    imported = run([python, "-c", "import relieve_app; print(relieve_app.__file__)"], cwd=where, env=env)
    assert imported.startswith(str(venv)), imported  # the installed app, not this repository's
    run([python, "manage.py", "check"], cwd=where, env=env)
    run([python, "manage.py", "migrate", "--noinput"], cwd=where, env=env)

    port = free_port()
    logs = [tmp_path / "runrelieve.log", tmp_path / "runserver.log"]
    commands = [
        [python, "manage.py", "runrelieve", "--workers", "1"],
        [python, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
    ]
    processes = []
    try:
        for argv, log in zip(commands, logs, strict=True):
            with open(log, "w") as out:
                processes.append(
                    subprocess.Popen(argv, cwd=where, env=env, stdout=out, stderr=subprocess.STDOUT)
                )
        # The master's log lines show although the fresh project configures no logging.
        wait_for(lambda: "listening on" in logs[0].read_text(), "runrelieve to listen", logs)
        assert str(where / "var" / "relieve.sock") in logs[0].read_text()  # the documented default
        browser = Browser(f"http://127.0.0.1:{port}")
        status, _, page = wait_for(lambda: browser.open("/contact/"), "the contact page", logs)
        assert status == 200 and 'name="emitter"' in page
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]

        form = {"emitter": "ada@example.com", "subject": "From a fresh project", "body": "Hello " * 10}
        status, headers, _ = browser.open("/contact/", {**form, "csrfmiddlewaretoken": token})

        assert status == 303, headers
        thanks = headers["Location"]
        assert re.fullmatch(r"/contact/thanks/[\w-]{32}/", thanks)
        smtp_sink.wait_for(1, timeout=60)
        assert smtp_sink.messages[0]["Subject"] == "From a fresh project"
        assert smtp_sink.messages[0]["Reply-To"] == "ada@example.com"
        status_url = thanks.replace("/thanks/", "/status/")
        state = wait_for(
            lambda: json.loads(browser.open(status_url)[2])["status"] == "sent",
            "the status to say sent",
            logs,
        )
        assert state
        assert "has been sent" in browser.open(thanks)[2]
    finally:
        stop_all(processes)
    assert "relieve_app.tasks.master.server: stopped" in logs[0].read_text()
