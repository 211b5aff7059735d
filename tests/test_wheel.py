"""The app as a stranger gets it: a wheel, a fresh virtualenv, a fresh `django-admin startproject`.

The project gets the app in INSTALLED_APPS and its urls, nothing else of the app's; then `migrate`,
`runrelieve` and `runserver` run as real processes, a form post goes through the CSRF check and the
redirect, and the mail reaches a real SMTP server. A second project is the app in production: its own
TASKS with only a "default" queue, DEBUG off, the EMAIL_* settings, gunicorn; its admin stays its own.
Only PyPI is used, through pip (with its cache), with requirements.txt as constraints so the versions
are the tested ones.

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


def post_contact_form(browser, subject, logs):
    """Open the contact page as a visitor does, then post its form with the page's CSRF token."""
    status, _, page = wait_for(lambda: browser.open("/contact/"), "the contact page", logs)
    assert status == 200 and 'name="emitter"' in page
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    form = {"emitter": "ada@example.com", "subject": subject, "body": "Hello " * 10}
    status, headers, _ = browser.open("/contact/", {**form, "csrfmiddlewaretoken": token})
    return status, headers


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


def smtp_mailers(smtp_sink):
    return (
        "MAILERS = {'default': {'BACKEND': 'django.core.mail.backends.smtp.EmailBackend', "
        f"'OPTIONS': {{'host': '{smtp_sink.host}', 'port': {smtp_sink.port}, 'timeout': 5}}}}}}\n"
    )


def start_project(venv, where, mail, extra=""):
    """`django-admin startproject`, plus the two lines, plus where the project's own mail goes
    (`mail` in place of the generated MAILERS), plus any `extra` settings at the end."""
    run([venv / "bin/django-admin", "startproject", "mysite", str(where)], env=clean_env(venv))
    settings = where / "mysite" / "settings.py"
    text = settings.read_text()
    text = text.replace("'django.contrib.staticfiles',", "'django.contrib.staticfiles',\n    'relieve_app',")
    text = re.sub(r"MAILERS = \{.*?\n\}\n", lambda _: mail, text, flags=re.DOTALL)
    settings.write_text(text + extra)
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
    start_project(venv, where, smtp_mailers(smtp_sink))
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
        status, headers = post_contact_form(browser, "From a fresh project", logs)

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


def production_settings(smtp_sink):
    """What a site in production writes itself: DEBUG off, its hosts, the EMAIL_* settings of its
    SMTP server, and a TASKS of its own naming the relieve backend with Django's one "default" queue."""
    mail = (
        "EMAIL_BACKEND = 'django.core.mail.backends.smtp.EmailBackend'\n"
        f"EMAIL_HOST = '{smtp_sink.host}'\nEMAIL_PORT = {smtp_sink.port}\nEMAIL_TIMEOUT = 5\n"
    )
    extra = (
        "\nDEBUG = False\nALLOWED_HOSTS = ['127.0.0.1']\nSTATIC_ROOT = BASE_DIR / 'static'\n"
        "TASKS = {'default': {'BACKEND': 'relieve_app.backend.RelieveBackend'}}\n"
    )
    return mail, extra


def test_a_production_project_with_its_own_tasks_sends_the_mail_and_keeps_its_admin(
    venv, tmp_path, smtp_sink
):
    where = tmp_path / "site"
    where.mkdir()
    start_project(venv, where, *production_settings(smtp_sink))
    env = {**clean_env(venv), "DJANGO_SUPERUSER_PASSWORD": "a-long-password-4-admin"}
    python = str(venv / "bin/python")
    run([python, "-m", "pip", "install", "-c", constraints(tmp_path), "gunicorn"], env=env)
    # Each used to end in a traceback: InvalidTask for the missing "mail" queue, then SettingsRefused.
    for command in (["check"], ["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        assert "Traceback" not in run([python, "manage.py", *command], cwd=where, env=env)
    run(
        [
            python,
            "manage.py",
            "createsuperuser",
            "--noinput",
            "--username",
            "boss",
            "--email",
            "b@example.org",
        ],
        cwd=where,
        env=env,
    )

    port = free_port()
    logs = [tmp_path / "runrelieve.log", tmp_path / "gunicorn.log"]
    commands = [
        [python, "manage.py", "runrelieve", "--workers", "1"],
        [str(venv / "bin/gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1", "mysite.wsgi"],
    ]
    processes = []
    try:
        for argv, log in zip(commands, logs, strict=True):
            with open(log, "w") as out:
                processes.append(
                    subprocess.Popen(argv, cwd=where, env=env, stdout=out, stderr=subprocess.STDOUT)
                )
        wait_for(lambda: "listening on" in logs[0].read_text(), "runrelieve to listen", logs)
        assert "children per queue: default=1\n" in logs[0].read_text()  # no "mail" queue to serve
        browser = Browser(f"http://127.0.0.1:{port}")
        status, headers = post_contact_form(browser, "From production", logs)

        assert status == 303, headers
        smtp_sink.wait_for(1, timeout=60)
        assert smtp_sink.messages[0]["Subject"] == "From production"
        status_url = headers["Location"].replace("/thanks/", "/status/")
        wait_for(lambda: json.loads(browser.open(status_url)[2])["status"] == "sent", "sent", logs)

        admin = Browser(f"http://127.0.0.1:{port}")
        _, _, login = admin.open("/admin/login/")
        assert "Django administration" in login
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login)[1]
        credentials = {"username": "boss", "password": env["DJANGO_SUPERUSER_PASSWORD"]}
        status, _, _ = admin.open("/admin/login/", {**credentials, "csrfmiddlewaretoken": token})
        assert status == 302
        status, _, index = admin.open("/admin/")
        assert status == 200
        assert '<div id="site-name"><a href="/admin/">Django administration</a></div>' in index
        assert "<h1>Site administration</h1>" in index and "relieve administration" not in index
        assert 'href="/admin/relieve_app/pool/"' in index  # the pool, in the app's own section
        status, _, pool = admin.open("/admin/relieve_app/pool/")
        assert status == 200 and "Relieve pool" in pool
    finally:
        stop_all(processes)
