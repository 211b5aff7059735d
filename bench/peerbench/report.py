"""Tables of medians, each figure beside its ratio to ours from the same run, and the last line."""

import math

from bench.peerbench.systems import OURS, SYSTEMS
from bench.peerbench.trial import median

MiB = 2**20
SHARES = ("web_cpu_ms", "workers_cpu_ms", "rest_cpu_ms")  # the system's CPU a message, by whose it was
WITH_POSTS = ("post_cpu_ms", "message_cpu_ms")  # the web's CPU a POST; a message's, its POST included
LOWER_IS_BETTER = ("post_p50", "post_p99", "cpu_ms", "system_cpu_ms", "sink_p50", "sink_p99", "rss")


def brief(flood, paced):
    cpu = {key: flood[key] for key in ("cpu_ms", "system_cpu_ms", *SHARES)}
    return (
        f"post p50 {flood['post_p50'] * 1000:.1f} ms p99 {flood['post_p99'] * 1000:.1f} ms, "
        f"{flood['per_s']:.0f}/s ({flood['delivered']}/{flood['accepted']}) beside "
        f"{flood['in_span']} POSTs, "
        f"{cpu['cpu_ms']:.1f} CPU ms per message ({cpu['system_cpu_ms']:.1f} without the clients and "
        f"the sink: web {cpu['web_cpu_ms']:.1f}, workers {cpu['workers_cpu_ms']:.1f}), "
        f"to sink p50 {paced['sink_p50'] * 1000:.0f} ms p99 {paced['sink_p99'] * 1000:.0f} ms, "
        f"rss {flood['rss'] / MiB:.0f} MiB in {flood['processes']} processes"
    )


def brief_kill(kill):
    return (
        f"{kill['accepted']} accepted, {kill['delivered_before_kill']} arrived before the kill of "
        f"{kill['killed']} processes, then {kill['delivered']} delivered, "
        f"lost {kill['lost']}, dup {kill['dup']}"
    )


def figures(runs):
    """Medians of one (system, database, delay)."""
    floods, paced = runs["flood"], runs["paced"]
    return {
        "post_p50": median(floods, "post_p50") * 1000,
        "post_p99": median(floods, "post_p99") * 1000,
        "per_s": median(floods, "per_s"),
        "cpu_ms": median(floods, "cpu_ms"),
        "system_cpu_ms": median(floods, "system_cpu_ms"),
        **{key: median(floods, key) for key in (*SHARES, *WITH_POSTS)},
        "sink_p50": median(paced, "sink_p50") * 1000,
        "sink_p99": median(paced, "sink_p99") * 1000,
        "rss": median(floods, "rss") / MiB,
        "pss": median(floods, "pss") / MiB,
        "processes": max(flood["processes"] for flood in floods),
        "undelivered": sum(run["accepted"] - run["delivered"] for run in floods + paced),
    }


def ratio(ours, theirs):
    if not theirs or math.isnan(theirs) or math.isnan(ours):
        return float("nan")
    return ours / theirs


COLUMNS = [
    ("post_p50", "POST p50 ms", "{:.1f}"),
    ("post_p99", "POST p99 ms", "{:.1f}"),
    ("per_s", "delivered/s", "{:.0f}"),
    ("cpu_ms", "machine CPU ms/msg", "{:.1f}"),
    ("system_cpu_ms", "system CPU ms/msg", "{:.1f}"),
    ("sink_p50", "to sink p50 ms", "{:.0f}"),
    ("sink_p99", "to sink p99 ms", "{:.0f}"),
    ("rss", "workers RSS MiB", "{:.0f}"),
]


def table(scenario, results):
    rows = {name: figures(runs) for (name, *key), runs in results.trials.items() if tuple(key) == scenario}
    if OURS.name not in rows:
        return "", rows
    ours = rows[OURS.name]
    head = ["system", *(title for _key, title, _fmt in COLUMNS), "PSS MiB", "procs"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, row in rows.items():
        cells = [SYSTEMS[name].label]
        for key, _title, fmt in COLUMNS:
            if key == "rss" and not SYSTEMS[name].has_workers:
                cells.append("(web only)")
                continue
            value = fmt.format(row[key])
            cells.append(value if name == OURS.name else f"{value} ({ratio(ours[key], row[key]):.2f})")
        cells += [f"{row['pss']:.0f}" if SYSTEMS[name].has_workers else "", str(row["processes"] or "")]
        if row["undelivered"]:
            cells[0] += f" **{row['undelivered']} undelivered**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), rows


def cpu_table(results):
    """Where each system's CPU a message went (medians): its web workers, its worker processes, the
    rest; the web's a POST, and a message's with its POST included, beside ours over it."""
    lines = [
        "| system | database, sink | system CPU ms/msg | web | workers | the rest | web a POST "
        "| a message, its POST included |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = {key: figures(runs) for key, runs in results.trials.items()}
    for name, kind, delay in sorted(rows, key=lambda key: (key[1:], key[0])):
        row, ours = rows[name, kind, delay], rows.get((OURS.name, kind, delay))
        shares = " | ".join(f"{row[key]:.1f}" for key in ("system_cpu_ms", *SHARES, *WITH_POSTS))
        if name != OURS.name and ours is not None:
            shares += f" ({ratio(ours['message_cpu_ms'], row['message_cpu_ms']):.2f})"
        lines.append(f"| {SYSTEMS[name].label} | {kind}, {delay * 1000:.0f} ms | {shares} |")
    return "\n".join(lines)


def kill_table(results):
    head = ["system", "accepted", "arrived before kill", "processes killed", "delivered", "lost", "dup"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, kill in results.kills.items():
        cells = [SYSTEMS[name].label, kill["accepted"], kill["delivered_before_kill"], kill["killed"]]
        cells += [kill["delivered"], kill["lost"], kill["dup"]]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def best(rows, key, lower):
    candidates = {
        name: row[key]
        for name, row in rows.items()
        if SYSTEMS[name].peer and not math.isnan(row[key]) and (key != "rss" or SYSTEMS[name].has_workers)
    }
    if not candidates:
        return None, float("nan")
    name = (min if lower else max)(candidates, key=candidates.get)
    return name, candidates[name]


def last_line(rows, results):
    ours = rows.get(OURS.name)
    kill = results.kills.get(OURS.name, {})
    if not ours:
        return (
            "peers best-peer=none post-p50-ratio=nan delivered-per-s-ratio=nan rss-ratio=nan lost=nan dup=nan"
        )
    best_name, best_rate = best(rows, "per_s", lower=False)
    _, best_post = best(rows, "post_p50", lower=True)
    _, best_rss = best(rows, "rss", lower=True)
    return (
        f"peers best-peer={best_name} post-p50-ratio={ratio(ours['post_p50'], best_post):.2f} "
        f"delivered-per-s-ratio={ratio(ours['per_s'], best_rate):.2f} "
        f"rss-ratio={ratio(ours['rss'], best_rss):.2f} "
        f"lost={kill.get('lost', 'nan')} dup={kill.get('dup', 'nan')}"
    )


def clock_table(results):
    """``--request-clock``: each POST's wall time in its gunicorn worker, split by the kernel's counters."""
    rows = [
        "| system, database | POSTs | wall ms | CPU ms | waiting for a core ms | the rest ms"
        " | preempted | blocked |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, clock in sorted(results.clocks.items()):
        times = " | ".join(f"{clock[field] * 1000:.2f}" for field in ("wall", "cpu", "runq", "other"))
        switches = f"{clock['preempted']:.0f} | {clock['blocked']:.0f}"
        rows.append(f"| {name} | {clock['posts']} | {times} | {switches} |")
    return "\n".join(rows)


def render(options, results):
    out = [
        f"peers: {len(options.systems)} systems, {options.workers} worker processes each, "
        f"{options.web_workers} gunicorn workers, {options.clients} clients; flood {options.messages} "
        f"(at 50 ms: {options.slow_messages}), paced {options.paced} at {options.rate:g}/s, "
        f"{options.repeats} repeats (medians); took {results.seconds / 60:.1f} min",
        "POSTs while a backlog drains: "
        + (f"{options.during_rate:g} a second" if options.during_rate else "as fast as answered"),
        "figures: value (ours / this system); times in ms, lower is better; delivered/s, higher",
        "system CPU: the machine's less the harness's (the benchmark's clients and the SMTP sink's process)",
    ]
    headline = {}
    scenarios = sorted(
        {tuple(key) for _name, *key in results.trials}, key=lambda s: (s[0] != "postgres", s[1])
    )
    for scenario in scenarios:
        text, rows = table(scenario, results)
        if not text:
            continue
        kind, delay = scenario
        out += ["", f"### {kind}, SMTP sink answering after {delay * 1000:.0f} ms", "", text]
        if scenario == (options.databases[0], 0.0):
            headline = rows
    if results.trials:
        out += [
            "",
            "### where the system's CPU went, ms a message: web workers, worker processes, the rest "
            "(database server, broker, the kernel's threads); a drain's messages were mostly queued "
            "before it, not POSTed: the last column adds the web's CPU a POST to the rest of a message's",
            "",
            cpu_table(results),
        ]
    if results.kills:
        out += [
            "",
            f"### kill test: {options.kill_messages} posted, every worker process SIGKILLed, "
            f"restarted, {options.kill_wait:g} s to deliver",
            "",
            kill_table(results),
        ]
    for name, text in results.profiles.items():
        out += ["", f"### py-spy, {name}, during the first drain", "", "```", text, "```"]
    if results.clocks:
        out += ["", "### inside Django, the POSTs made during the drains (medians)", "", clock_table(results)]
    for (name, kind), error in results.errors.items():
        out += ["", f"{name} on {kind} failed: {error[-1500:]}"]
    out += ["", last_line(headline, results)]
    return "\n".join(out)
