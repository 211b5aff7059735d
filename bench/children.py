"""How fast a killed child of a real `runrelieve` answers again, and what each child costs in memory,
started cold (RELIEVE_PRELOAD off: a fresh interpreter that loads Django) and forked from the zygote.

Usage:
    nice -n 10 .venv/bin/python bench/children.py [--kills 20] [--children 4]

Each mode boots its own master on a fresh SQLite file (as bench/tasks.py does), with ``--children``
children on the "default" queue and one on "mail". A default child is sent SIGKILL ``--kills`` times,
in turn, each once the one before is back: the restart is timed from the kill to the moment the master
heard the new child's ``relieve:started`` (the "at" of the TaskEvent "start" it records), p50.
Then PSS and RSS of every child, from /proc/<pid>/smaps_rollup: the median, in MiB. PSS splits each
page shared by N processes N ways, so the pages children share with the zygote count once among them.
Then the renderers (``--mail-children``, 4): a master serving the mail queue alone, as bench/peers.py
runs ours (``runrelieve --workers 4``), sends contact mails to a local SMTP sink until each mail
child has sent one, so each has asked for a Markdown renderer (forked warm, the zygote's children
share one; started cold, each has its own). Measured then: the median PSS of one renderer and its
private memory (the pages no other process maps: what it costs of its own; its PSS also holds its
share of the zygote's pages, there anyway), and the sum of PSS of the whole tree (master, zygote,
children, renderers), in MiB.
The cold run is the baseline, in the same run. The last line is for scripts (one line)::

    children restart-p50-ms=… pss-per-child-mb=… rss-per-child-mb=… renderer-pss-mb=…
        renderer-private-mb=… tree-pss-mb=… cold-restart-p50-ms=… cold-pss-per-child-mb=…
        cold-renderer-pss-mb=… cold-renderer-private-mb=… cold-tree-pss-mb=…
"""

import argparse
import json
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

from bench import own_process

MIN_UPTIME = 1.2  # seconds: a child killed younger than the engine's MIN_UPTIME would count as a crash loop
MAIL_ROUNDS = 20  # batches of mails sent before giving up on every mail child rendering one
MAIL_BODY = "Hello **there**, a contact mail whose Markdown the child renders:\n\n- one\n- two\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--children", type=int, default=4)
    parser.add_argument("--mail-children", type=int, default=4)
    parser.add_argument("--one", choices=["cold", "warm"], help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one:
        print(json.dumps(measure(options.one == "warm", options)))
        return
    figures = {mode: run_one(mode, options) for mode in ("cold", "warm")}
    for mode, label in (("cold", "cold (RELIEVE_PRELOAD off)"), ("warm", "zygote (RELIEVE_PRELOAD on)")):
        found = figures[mode]
        print(
            f"{label:28} restart p50 {found['p50_ms']:7.1f} ms  p90 {found['p90_ms']:7.1f} ms  "
            f"PSS/child {found['pss_mb']:5.1f} MiB  RSS/child {found['rss_mb']:5.1f} MiB  "
            f"({found['kills']} kills, {found['children']} children)",
            flush=True,
        )
        print(
            f"{'':28} PSS/renderer {found['renderer_pss_mb']:5.1f} MiB  "
            f"private/renderer {found['renderer_private_mb']:5.1f} MiB  "
            f"PSS of the tree {found['tree_pss_mb']:6.1f} MiB ({found['tree_processes']} processes, "
            f"{found['mail_children']} mail children, {plural(found['renderers'], 'renderer')})",
            flush=True,
        )
    cold, warm = figures["cold"], figures["warm"]
    print(
        f"restart {cold['p50_ms'] / warm['p50_ms']:.1f}x faster, "
        f"PSS per child {cold['pss_mb'] / warm['pss_mb']:.1f}x smaller, "
        f"renderer's own memory {cold['renderer_private_mb'] / warm['renderer_private_mb']:.1f}x smaller, "
        f"of the tree {cold['tree_pss_mb'] / warm['tree_pss_mb']:.1f}x smaller with the zygote"
    )
    print(
        f"children restart-p50-ms={warm['p50_ms']:.1f} pss-per-child-mb={warm['pss_mb']:.1f} "
        f"rss-per-child-mb={warm['rss_mb']:.1f} renderer-pss-mb={warm['renderer_pss_mb']:.1f} "
        f"renderer-private-mb={warm['renderer_private_mb']:.1f} tree-pss-mb={warm['tree_pss_mb']:.1f} "
        f"cold-restart-p50-ms={cold['p50_ms']:.1f} cold-pss-per-child-mb={cold['pss_mb']:.1f} "
        f"cold-renderer-pss-mb={cold['renderer_pss_mb']:.1f} "
        f"cold-renderer-private-mb={cold['renderer_private_mb']:.1f} "
        f"cold-tree-pss-mb={cold['tree_pss_mb']:.1f}"
    )


def plural(count, noun):
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def run_one(mode, options):
    arguments = [
        "--kills",
        options.kills,
        "--children",
        options.children,
        "--mail-children",
        options.mail_children,
    ]
    return own_process.measure(__file__, [mode], arguments, timeout=1200)


def measure(preload, options):
    (ROOT / "var").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="children-", dir=ROOT / "var"))
    env = configure(folder, preload)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from tests.processes import stop_all

    master = start_master(env, folder, ["--queue", f"default={options.children}", "--queue", "mail=1"])
    try:
        kills = kill_in_turn([f"default{n}" for n in range(options.children)], options.kills)
        pids = [child["pid"] for child in children()]
        memory = [smaps_rollup(pid) for pid in pids]
        delays = restart_delays(kills)
    finally:
        stop_all([master])
    ordered = sorted(delays)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p90_ms": ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))] * 1000,
        "pss_mb": statistics.median(pss for pss, _rss in memory) / 1024,
        "rss_mb": statistics.median(rss for _pss, rss in memory) / 1024,
        "kills": len(ordered),
        "children": len(pids),
        **measure_renderers(env, folder, options.mail_children),
    }


def measure_renderers(env, folder, count):
    """A master of ``count`` mail children, each of which has rendered a mail: the PSS of its renderers
    and of its whole tree."""
    from relieve_app.contact.mailtask import send_contact_mail
    from tests.processes import stop_all
    from tests.smtp_sink import SMTPSink

    with SMTPSink() as sink:
        env = {**env, "BENCH_QUEUES": "mail", "EMAIL_URL": f"smtp://{sink.host}:{sink.port}"}
        master = start_master(env, folder, ["--workers", str(count)])
        try:
            sent = 0
            for round_ in range(MAIL_ROUNDS):
                for n in range(count):
                    job = {"emitter": "v@example.org", "recipient": "owner@example.com", "body": MAIL_BODY}
                    send_contact_mail.enqueue({**job, "subject": f"mail {round_}.{n}"})
                sent += count
                sink.wait_for(sent, timeout=60)
                mail_children, renderers, pids = tree_of(master.pid)
                if len(mail_children) == count and all(child["done"] for child in children()):
                    break  # each mail child has rendered a mail
            else:
                raise SystemExit(f"not every one of {len(mail_children)} mail children sent a mail")
            renderer_memory = [smaps_rollup(pid) for pid in renderers]
            renderer_private = [private_memory(pid) for pid in renderers]
            tree_pss = sum(smaps_rollup(pid)[0] for pid in pids)
        finally:
            stop_all([master])
    return {
        "renderer_pss_mb": statistics.median(pss for pss, _rss in renderer_memory) / 1024,
        "renderer_private_mb": statistics.median(renderer_private) / 1024,
        "tree_pss_mb": tree_pss / 1024,
        "tree_processes": len(pids),
        "mail_children": len(mail_children),
        "renderers": len(renderers),
    }


def tree_of(master_pid):
    """(the children the master reports, its renderers, every pid of its tree) from /proc: a renderer is
    any process of the tree that is neither the master, a zygote (its other children) nor a child."""
    from bench.peerbench.procs import tree

    pids = tree([master_pid])
    parents = {pid: parent_of(pid) for pid in pids}
    mail_children = {child["pid"] for child in children() if child.get("running")}
    zygotes = {pid for pid, parent in parents.items() if parent == master_pid} - mail_children
    renderers = set(pids) - {master_pid} - zygotes - mail_children
    return mail_children, sorted(renderers), pids


def parent_of(pid):
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def configure(folder, preload):
    os.environ["BENCH_BACKEND"] = "relieve"
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.tasks_settings"
    os.environ["RELIEVE_SOCKET"] = str(folder / "r.sock")
    os.environ["RELIEVE_PRELOAD"] = "true" if preload else "false"
    os.environ["RELIEVE_MAX_CALLS"] = "0"
    os.environ["DEBUG"] = "false"
    os.environ["RELIEVE_ALLOW_DEV_MAIL"] = "true"  # no mail is sent here
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-anything-else-0123456789")
    os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'bench.sqlite3'}"
    return dict(os.environ)


def start_master(env, folder, options):
    from relieve_app.tasks import client

    log_path = folder / "master.log"
    argv = [sys.executable, "manage.py", "runrelieve", *options]
    with open(log_path, "a") as log:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"runrelieve exited:\n{log_path.read_text()[-3000:]}")
        try:
            client.request("ping")
            return process
        except client.ClientError:
            time.sleep(0.1)
    raise SystemExit("runrelieve did not answer")


def children():
    from relieve_app.tasks import client

    return client.request("status")["children"]


def running_pid(name):
    for child in children():
        if child["name"] == name and child.get("running"):
            return child["pid"]
    return None


def kill_in_turn(names, count):
    """SIGKILL ``count`` children, in turn, each once the one before is back; returns (name, time)."""
    kills = []
    for n in range(count):
        name = names[n % len(names)]
        pid = wait_for(lambda name=name: running_pid(name))
        wait_for(
            lambda name=name: all((c["uptime"] or 0) > MIN_UPTIME for c in children() if c["name"] == name)
        )
        at = time.time()
        os.kill(pid, signal.SIGKILL)
        kills.append((name, at))
        wait_for(lambda name=name, pid=pid: running_pid(name) not in (None, pid))
    return kills


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise SystemExit(f"timed out waiting for {predicate}")


def restart_delays(kills):
    """Kill -> the "at" of the first "start" the master recorded for that child after it."""
    from relieve_app.models import TaskEvent

    def starts(name):
        rows = TaskEvent.objects.filter(task_name=name, event="start").values_list("payload", flat=True)
        return sorted(payload["at"] for payload in rows)

    wait_for(lambda: all(any(at > killed for at in starts(name)) for name, killed in kills))
    return [min(at for at in starts(name) if at > killed) - killed for name, killed in kills]


def private_memory(pid):
    """Private_Clean + Private_Dirty of ``pid`` in KiB: the pages it maps alone."""
    return sum(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        if line.startswith(("Private_Clean:", "Private_Dirty:"))
    )


def smaps_rollup(pid):
    """(PSS, RSS) of ``pid`` in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Pss", "Rss"):
            found[key] = int(rest.split()[0])
    return found["Pss"], found["Rss"]


if __name__ == "__main__":
    main()
