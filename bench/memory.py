"""Where a warm mail child's own memory comes from: ``sudo .venv/bin/python bench/memory.py [--mails 200]``.

A real ``runrelieve --workers 4`` on a fresh SQLite file sends ``--mails`` contact mails to a local
SMTP sink; then one of its mail children runs ``bench/memory_probe.py``'s task, which compares each
page the child holds of its own with the zygote's page at the same address. It prints how many MiB
the child copied from the zygote and how many it added; which of the copied pages changed only in
reference counts and the collector's links (the pages immortal objects would keep shared), only
outside live objects (memory freed since the fork, or the allocators' own), or in objects'
contents; and the changed words by kind. Root only: the kernel shows page frames to root alone.
The last line is for scripts::

    memory child-copied-mb=… child-new-mb=… refcounts-only-mb=… outside-only-mb=… contents-mb=…
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAGES = {
    "refcounts and collector links only": "refcounts-only",
    "outside live objects only": "outside-only",
    "object contents": "contents",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=200, help="mails sent before the child is looked at")
    parser.add_argument("--workers", type=int, default=4)
    options = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/memory.py reads page frames from /proc/<pid>/pagemap: run it as root")
    found = measure(options)
    print(
        f"a mail child after {options.mails} mails: {found['copied_mb']:.1f} MiB copied from the zygote, "
        f"{found['new_mb']:.1f} MiB new"
    )
    for mapping, pages in found["copied_by_mapping"]:
        print(f"  copied in {mapping}: {pages * 4 / 1024:.1f} MiB")
    for kind, mib in found["pages_mb"].items():
        print(f"  copied pages where {kind} changed: {mib:.1f} MiB")
    for where, mib in found["pages_by_mapping_mb"].items():
        print(f"    copied pages {where}: {mib:.1f} MiB")
    print("  changed 8-byte words: " + ", ".join(f"{kind} {count}" for kind, count in found["words"].items()))
    print("  objects whose contents changed most: " + ", ".join(f"{name} {n}" for name, n in found["bodies"]))
    line = [f"child-copied-mb={found['copied_mb']:.1f}", f"child-new-mb={found['new_mb']:.1f}"]
    line += [f"{key}-mb={found['pages_mb'].get(kind, 0):.1f}" for kind, key in PAGES.items()]
    print("memory " + " ".join(line))


def measure(options):
    from bench import children as bench_children

    (ROOT / "var").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="memory-", dir=ROOT / "var"))
    env = bench_children.configure(folder, preload=True)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from bench import memory_probe
    from relieve_app.contact.mailtask import send_contact_mail
    from relieve_app.models import TaskRecord
    from tests.processes import stop_all
    from tests.smtp_sink import SMTPSink

    with SMTPSink() as sink:
        env = {**env, "BENCH_QUEUES": "mail", "EMAIL_URL": f"smtp://{sink.host}:{sink.port}"}
        master = bench_children.start_master(env, folder, ["--workers", str(options.workers)])
        try:
            for n in range(options.mails):
                job = {"emitter": "v@example.org", "recipient": "owner@example.com"}
                send_contact_mail.enqueue({**job, "subject": f"mail {n}", "body": bench_children.MAIL_BODY})
            sink.wait_for(options.mails, timeout=300)
            row = finished(memory_probe.probe.enqueue().id)
        finally:
            stop_all([master])
    if row.status != TaskRecord.Status.SUCCESSFUL or "error" in (row.return_value or {}):
        raise SystemExit(f"the probe failed: {row.errors or row.return_value}")
    return row.return_value


def finished(pk, timeout=300):
    from relieve_app.models import TaskRecord

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = TaskRecord.objects.get(pk=pk)
        if row.status in TaskRecord.FINISHED:
            return row
        time.sleep(0.2)
    raise SystemExit(f"the probe did not finish within {timeout} s")


if __name__ == "__main__":
    main()
