"""What a contact mail costs each process of a real `runrelieve`: a drain of mails, CPU per mail.

Usage:
    nice -n 10 .venv/bin/python bench/mail_drain.py [--mails 2000] [--children 4] [--most N]
        [--databases sqlite,postgres] [--stall 0]

For each database (a fresh SQLite file; a fresh PostgreSQL database at BENCH_PG_URL), a master of
``--children`` mail children (``runrelieve --workers N``) sends to a local SMTP sink (a process of
its own, ``bench/peerbench/sink.py``) that answers at once, or ``--stall`` seconds after each
message's data, as a distant SMTP server would. ``--most`` gives the mail queue a range instead
(``runrelieve --queue mail=CHILDREN-MOST``): it grows while mails wait; the tree's PSS is read at
the end of the drain, the children it grew by included. Two mails a child first, so that every child has
its SMTP connection and has asked for a renderer; then
``--mails`` contact messages are stored as the contact view stores them (the ``MailOutcome`` and its
task, ``contact.views.enqueue``), in one transaction, and timed from the commit to the last one in
the sink. The CPU time of each process of the master's tree is read from /proc before and after:
milliseconds of CPU per mail for the master (its event loop and its database thread), the children,
and the Markdown renderer they share (one each when started cold); then the PSS of the whole tree,
in MiB; and on PostgreSQL the CPU of the database server's processes over the same span, a mail
(the machine's whole server: run nothing else against it meanwhile). The last line is for scripts
(one line)::

    mail-drain <database>-per-s=… <database>-master-ms=… <database>-children-ms=… <database>-renderers-ms=…
        <database>-tree-pss-mb=… <database>-server-ms=… …
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import own_process
from bench.tasks import cpu_seconds, fresh_postgres

PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/relieve_mail_drain_bench")
WARM_UP = 2  # mails a child sent before the clock starts: each connects to SMTP, asks for a renderer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--children", type=int, default=4)
    parser.add_argument("--most", type=int, help="the mail queue grows from --children to this many")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--stall", type=float, default=0.0, help="seconds the sink waits before answering")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one:
        print(json.dumps(measure(options.one, options)))
        return
    figures = {}
    for database in options.databases.split(","):
        arguments = ["--mails", options.mails, "--children", options.children, "--stall", options.stall]
        arguments += ["--most", options.most] if options.most else []
        timeout = 1200 + sink_waits(options)
        figures[database] = found = own_process.measure(__file__, [database], arguments, timeout=timeout)
        server = f", database server {found['server_ms']:.2f} ms" if "server_ms" in found else ""
        print(
            f"{database:8} {found['per_s']:6.0f} mails/s; CPU per mail: master {found['master_ms']:.2f} ms, "
            f"children {found['children_ms']:.2f} ms, renderers {found['renderers_ms']:.2f} ms{server}; "
            f"tree PSS {found['tree_pss_mb']:.1f} MiB",
            flush=True,
        )
    line = [
        f"{database}-{key.replace('_', '-')}={value:.{0 if key == 'per_s' else 2}f}"
        for database, found in figures.items()
        for key, value in found.items()
    ]
    print("mail-drain " + " ".join(line))


def sink_waits(options):
    """Seconds the sink's ``--stall`` adds to a drain, twice over: what the timeouts allow for it."""
    return 2 * options.mails * options.stall / options.children


def measure(database, options):
    from bench import children as bench_children

    (ROOT / "var").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="mail-drain-", dir=ROOT / "var"))
    env = bench_children.configure(folder, preload=True)
    if database == "postgres":
        fresh_postgres(PG_URL)
        os.environ["DATABASE_URL"] = env["DATABASE_URL"] = PG_URL
    os.environ["CONTACT_RECIPIENT"] = env["CONTACT_RECIPIENT"] = "owner@example.com"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.db import transaction

    from bench.peerbench.sink import SinkProcess
    from relieve_app.contact.views import enqueue
    from tests.processes import stop_all

    def mail(subject):
        return {"emitter": "visitor@example.org", "subject": subject, "body": bench_children.MAIL_BODY}

    with SinkProcess(stall=options.stall) as sink:
        env = {**env, "BENCH_QUEUES": "mail", "EMAIL_URL": f"smtp://{sink.host}:{sink.port}"}
        most = f"-{options.most}" if options.most else ""
        queue = ["--queue", f"mail={options.children}{most}"]
        master = bench_children.start_master(env, folder, ["--workers", str(options.children), *queue])
        try:
            warm_up = WARM_UP * options.children
            for n in range(warm_up):
                enqueue(mail(f"warm-up {n}"))
            sink.wait_for(warm_up, timeout=60 + warm_up * options.stall)
            time.sleep(1)  # the warm-up's outcomes written
            _children, _renderers, pids = bench_children.tree_of(master.pid)
            before = {pid: cpu_seconds(pid) for pid in pids}
            with transaction.atomic():
                for n in range(options.mails):
                    enqueue(mail(f"mail {n}"))
            server_before = database_server_cpu()  # the drain's, from the commit: not the enqueues'
            started = time.perf_counter()
            sink.wait_for(warm_up + options.mails, timeout=600 + sink_waits(options))
            elapsed = time.perf_counter() - started
            time.sleep(0.5)  # the last outcomes written
            children, renderers, pids = bench_children.tree_of(master.pid)
            used = {pid: cpu_seconds(pid) - before.get(pid, 0) for pid in pids}
            tree_pss = sum(bench_children.smaps_rollup(pid)[0] for pid in pids) / 1024
            server_after = database_server_cpu()
        finally:
            stop_all([master])

    def per_mail(group):
        return sum(used[pid] for pid in group) * 1000 / options.mails

    figures = {
        "per_s": options.mails / elapsed,
        "master_ms": per_mail([master.pid]),
        "children_ms": per_mail(children),
        "renderers_ms": per_mail(renderers),
        "tree_pss_mb": tree_pss,
    }
    if database == "postgres":
        server = sum(seconds - server_before.get(pid, 0) for pid, seconds in server_after.items())
        figures["server_ms"] = server * 1000 / options.mails
    return figures


def database_server_cpu():
    """CPU so far of each PostgreSQL server process on this machine: a backend that ended between
    two readings is not counted, but the master's connection lives through the drain."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().startswith("postgres"):
                found[int(entry.name)] = cpu_seconds(int(entry.name))
        except OSError:  # ended meanwhile
            continue
    return found


if __name__ == "__main__":
    main()
