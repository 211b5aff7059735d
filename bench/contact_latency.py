"""How long a visitor waits for POST /contact/: through the pool, against sending in the request.

Usage: python bench/contact_latency.py [--posts 100] [--smtp-delay 0.1] [--workers 4]

Both variants run in this process through Django's test client and the full middleware stack,
on one fresh SQLite file, against one SMTP server that waits ``--smtp-delay`` seconds before
it answers each message:
- pool: the real view; it stores the message and hands it to a real ``runrelieve``;
- sync: the same form and row, then the mail is rendered and sent before answering, as a
  contact view without a pool would.
The last line is for scripts:
``contact-post p50-ms pool=... sync=... ratio=... p99-ms pool=... sync=...``.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET = 0.05  # the pool's median must stay under 5% of the synchronous one


def configure(folder):
    """Point Django at a fresh database in ``folder``, before anything imports the settings."""
    os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'bench.sqlite3'}"
    os.environ["RELIEVE_SOCKET"] = str(folder / "relieve.sock")
    os.environ["CONTACT_RATE_LIMIT"] = ""
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def sync_view(request):
    """The baseline: the contact view with the mail sent inside the request."""
    from django.http import JsonResponse

    from relieve_app.conf import app_settings
    from relieve_app.contact.forms import ContactForm
    from relieve_app.contact.mailtask import job_of, send_contact_mail
    from relieve_app.models import MailOutcome

    form = ContactForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors}, status=400)
    fields = {name: form.cleaned_data[name] for name in ("emitter", "subject", "body")}
    outcome = MailOutcome.objects.create(recipient=app_settings.CONTACT_RECIPIENT, **fields)
    try:
        send_contact_mail.call(job_of(outcome))  # what a child does, here inside the request
    except Exception:
        return JsonResponse({"id": outcome.pk, "status": "failed"}, status=202)
    return JsonResponse({"id": outcome.pk, "status": "sent"}, status=202)


def post_times(client, path, posts, label):
    times = []
    for n in range(posts):
        data = {"emitter": f"v{n}@example.org", "subject": f"{label} {n}", "body": "**Bench** body. " * 4}
        start = time.perf_counter()
        response = client.post(path, data, HTTP_ACCEPT="application/json")
        times.append(time.perf_counter() - start)
        if response.status_code != 202:
            raise SystemExit(f"{label}: POST {n} answered {response.status_code}: {response.content[:200]!r}")
    return times


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def start_master(folder, sink, workers):
    env = {**os.environ, "EMAIL_URL": f"smtp://{sink.host}:{sink.port}"}
    log = open(folder / "master.log", "w")  # noqa: SIM115 - handed to the master process
    master = subprocess.Popen(
        [sys.executable, "manage.py", "runrelieve", "--workers", str(workers)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    from relieve_app.tasks import client

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            client.request("ping")
            return master
        except client.ClientError:
            if master.poll() is not None:
                raise SystemExit(f"runrelieve exited: {(folder / 'master.log').read_text()}") from None
            time.sleep(0.05)
    raise SystemExit("runrelieve did not start within 30s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=100)
    parser.add_argument("--smtp-delay", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="relieve-bench-") as tmp:
        folder = Path(tmp)
        configure(folder)
        from django.test import Client, override_settings
        from django.urls import path

        from tests.smtp_sink import SMTPSink

        with SMTPSink(stall=args.smtp_delay) as sink:
            smtp = {"host": sink.host, "port": sink.port, "use_tls": False, "timeout": 10}
            mailers = {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": smtp}}
            urls = type("urls", (), {"urlpatterns": [path("contact-sync/", sync_view)]})
            master = start_master(folder, sink, args.workers)
            try:
                with override_settings(MAILERS=mailers):
                    client = Client()
                    client.get("/contact/")
                    post_times(client, "/contact/", 5, "warm-up")
                    pool = post_times(client, "/contact/", args.posts, "pool")
                    with override_settings(ROOT_URLCONF=urls):
                        post_times(client, "/contact-sync/", 2, "warm-up")
                        sync = post_times(client, "/contact-sync/", args.posts, "sync")
                    sink.wait_for(2 * args.posts + 7, timeout=60 + args.posts * args.smtp_delay)
            finally:
                master.send_signal(signal.SIGTERM)
                master.wait(30)

    p50 = {"pool": statistics.median(pool) * 1000, "sync": statistics.median(sync) * 1000}
    p99 = {"pool": percentile(pool, 0.99) * 1000, "sync": percentile(sync, 0.99) * 1000}
    ratio = p50["pool"] / p50["sync"]
    print(f"{'':8}{'p50 ms':>10}{'p99 ms':>10}")
    for name in ("pool", "sync"):
        print(f"{name:8}{p50[name]:>10.2f}{p99[name]:>10.2f}")
    verdict = "met" if ratio < TARGET else "MISSED"
    print(f"pool/sync median {ratio:.3f} (target < {TARGET}): {verdict}; {args.posts} posts each")
    print(
        f"contact-post p50-ms pool={p50['pool']:.2f} sync={p50['sync']:.2f} ratio={ratio:.3f} "
        f"p99-ms pool={p99['pool']:.2f} sync={p99['sync']:.2f}"
    )
    return 0 if ratio < TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
