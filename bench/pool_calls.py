"""Round trips to a pool of 2 children: ours (CloudWorker of CallableTasks) against the standard library.

Usage: python bench/pool_calls.py [--calls 20000] [--window 256] [--latency-calls 2000] [--repeats 5]

- throughput: ``--calls`` no-op round trips, ``--window`` of them in flight; calls/s.
- latency: one call at a time; p50 and p99 in µs.
- restart: a child SIGKILLed until its task answers a ``get`` again; ms.
Every measure is repeated and its median kept: the machine is shared and noisy.
The last line is for scripts: ``pool-calls ours=... ppe=... mp=... ratio=... p50-us ours=... ppe=...``.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import argparse
import asyncio
import collections
import concurrent.futures
import multiprocessing
import os
import signal
import statistics
import time

from bench.noop import noop
from relieve_app.pool import CallableTask, CloudWorker
from relieve_app.pool.tasks import MIN_UPTIME

NOOP = str(ROOT / "bench" / "noop.py") + ":Noop"
CHILDREN = 2
WARMUP = 2_000
TARGETS = {"calls/s vs ppe": 2.0, "calls/s vs mp": 1.0, "p50 vs ppe": 0.7}


# ours ---------------------------------------------------------------------------


async def start_ours():
    worker = CloudWorker()
    for i in range(CHILDREN):
        worker.add(CallableTask(NOOP, restart=True, name=f"noop{i}"))
    await worker.run()
    return worker


async def ours_throughput(worker, calls, window, method="noop"):
    async def lane(count):
        for _ in range(count):
            await worker.get(method)

    share, extra = divmod(calls, window)
    started = time.perf_counter()
    await asyncio.gather(*(lane(share + (i < extra)) for i in range(window)))
    return calls / (time.perf_counter() - started)


async def ours_latencies(worker, calls, method="noop"):
    samples = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        started = clock()
        await worker.get(method)
        samples.append(clock() - started)
    return samples


async def restart_times(worker, kills):
    """ms from a SIGKILL until the task answers again; each child lives MIN_UPTIME first,
    so the engine does not take the kills for a crash loop and back off."""
    task = next(iter(worker.tasks.values()))
    loop = asyncio.get_running_loop()
    times = []
    for _ in range(kills):
        await asyncio.sleep(max(0.0, task.started_at + MIN_UPTIME + 0.05 - time.time()))
        started_again = loop.create_future()
        task.once("start", lambda _at, f=started_again: f.done() or f.set_result(None))
        started = time.perf_counter()
        os.kill(task.pid, signal.SIGKILL)
        await asyncio.wait_for(started_again, 30)
        await task.get("noop", timeout=10)
        times.append((time.perf_counter() - started) * 1000)
    return times


# the standard library --------------------------------------------------------------


def windowed(submit, calls, window):
    """calls/s of ``submit()`` (returns something with ``result``) with ``window`` in flight."""
    pending = collections.deque()
    started = time.perf_counter()
    for _ in range(calls):
        if len(pending) >= window:
            pending.popleft()()
        pending.append(submit())
    while pending:
        pending.popleft()()
    return calls / (time.perf_counter() - started)


def ppe_submit(executor):
    return lambda: executor.submit(noop).result


def mp_submit(pool):
    return lambda: pool.apply_async(noop).get


def sync_latencies(one_call, calls):
    samples = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        started = clock()
        one_call()
        samples.append(clock() - started)
    return samples


# report ---------------------------------------------------------------------------------


def percentile(samples_ns, fraction):
    ordered = sorted(samples_ns)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000


def median_percentiles(runs):
    """Median over the runs of each run's p50 and p99, in µs."""
    return (
        statistics.median(percentile(run, 0.50) for run in runs),
        statistics.median(percentile(run, 0.99) for run in runs),
    )


def main(argv=None):
    args = parse_args(argv)
    # The executors fork first, so their workers hold none of our children's sockets.
    executor = concurrent.futures.ProcessPoolExecutor(CHILDREN)
    pool = multiprocessing.Pool(CHILDREN)
    loop = asyncio.new_event_loop()
    worker = loop.run_until_complete(start_ours())
    try:
        return run(args, loop, worker, executor, pool)
    finally:
        loop.run_until_complete(worker.kill())
        loop.close()
        executor.shutdown()
        pool.terminate()
        pool.join()


def run(args, loop, worker, executor, pool):
    rates = collections.defaultdict(list)
    runs = collections.defaultdict(list)
    measures = {
        "ours": lambda n: loop.run_until_complete(ours_throughput(worker, n, args.window)),
        "ours async def": lambda n: loop.run_until_complete(ours_throughput(worker, n, args.window, "anoop")),
        "ppe": lambda n: windowed(ppe_submit(executor), n, args.window),
        "mp": lambda n: windowed(mp_submit(pool), n, args.window),
    }
    one_call = {
        "ours": lambda n: loop.run_until_complete(ours_latencies(worker, n)),
        "ours async def": lambda n: loop.run_until_complete(ours_latencies(worker, n, "anoop")),
        "ppe": lambda n: sync_latencies(lambda: executor.submit(noop).result(), n),
        "mp": lambda n: sync_latencies(lambda: pool.apply(noop), n),
    }
    for name in measures:
        measures[name](WARMUP)
        one_call[name](WARMUP // 10)
    for repeat in range(args.repeats):
        for name, measure in measures.items():  # interleaved, so a noisy second hits every contender
            rates[name].append(measure(args.calls))
            runs[name].append(one_call[name](args.latency_calls))
        latest = "  ".join(f"{name}={values[-1]:,.0f}/s" for name, values in rates.items())
        print(f"repeat {repeat + 1}/{args.repeats}: {latest}")
    restarts = [float("nan")]
    if args.restarts:
        restarts = loop.run_until_complete(restart_times(worker, args.restarts))

    rate = {name: statistics.median(values) for name, values in rates.items()}
    latency = {name: median_percentiles(values) for name, values in runs.items()}
    print()
    print(f"{'pool of 2':<16}{'calls/s':>12}{'p50 µs':>10}{'p99 µs':>10}")
    for name in measures:
        print(f"{name:<16}{rate[name]:>12,.0f}{latency[name][0]:>10.0f}{latency[name][1]:>10.0f}")
    print(
        f"restart (ours, {len(restarts)} SIGKILLs): median {statistics.median(restarts):.1f} ms, "
        f"min {min(restarts):.1f}, max {max(restarts):.1f}"
    )
    ratios = {
        "calls/s vs ppe": rate["ours"] / rate["ppe"],
        "calls/s vs mp": rate["ours"] / rate["mp"],
        "p50 vs ppe": latency["ours"][0] / latency["ppe"][0],
    }
    print()
    for name, value in ratios.items():
        target = TARGETS[name]
        met = value <= target if name.startswith("p50") else value >= target
        sign = "<=" if name.startswith("p50") else ">="
        print(f"{name:<16}{value:>6.2f}x  target {sign} {target}x  {'met' if met else 'MISSED'}")
    print(
        f"pool-calls ours={rate['ours']:.0f} ppe={rate['ppe']:.0f} mp={rate['mp']:.0f} "
        f"ratio={ratios['calls/s vs ppe']:.2f} "
        f"p50-us ours={latency['ours'][0]:.0f} ppe={latency['ppe'][0]:.0f}"
    )
    return ratios


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="round trips per throughput run")
    parser.add_argument("--window", type=int, default=256, help="round trips in flight")
    parser.add_argument("--latency-calls", type=int, default=2_000, help="one-at-a-time calls per run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--restarts", type=int, default=20, help="SIGKILLs for the restart time; 0 skips")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
