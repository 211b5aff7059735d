"""Four long-running children behind a CloudWorker: calls, their events, and a restart after SIGKILL.

Usage: python -m examples.cloud [--tasks 4] [--calls 8]
"""

import argparse
import asyncio
import signal

from relieve_app.pool import CallableTask, CloudWorker

JOB = "examples.job:Job"


async def main(tasks=4, calls=8, out=print):
    """Returns what happened: info and error counts, and the killed task's old and new pid."""
    loop = asyncio.get_running_loop()
    worker = CloudWorker()
    for i in range(tasks):
        worker.add(CallableTask(JOB, restart=True, name=f"task{i}"))
    infos, errors = [], []
    all_heard = loop.create_future()  # every call's info and the one error

    def heard():
        if len(infos) == calls and errors and not all_heard.done():
            all_heard.set_result(None)

    def on_info(data):
        infos.append(data)
        out(f"info: {data}")
        heard()

    def on_error(message, _stack):
        errors.append(message)
        out(f"error: {message}")
        heard()

    # Listening on the worker reaches every task, the restarted ones too.
    worker.on("info", on_info)
    worker.on("error", on_error)
    try:
        await worker.run()
        for number in range(calls):
            await worker.call("work", number)  # resolves once the child has it, not when done
        await worker.call("fail", calls)
        await all_heard

        victim = worker.task("task0")
        old_pid = victim.pid
        restarted = loop.create_future()
        victim.once("restart", lambda: out(f"{victim.name} restarting"))
        victim.once("start", lambda _at: restarted.done() or restarted.set_result(None))
        code = await victim.kill(signal.SIGKILL)
        out(f"{victim.name} (pid {old_pid}) exited with {code}")
        await restarted
        new_pid = await victim.get("pid")
        out(f"{victim.name} is back as pid {new_pid}, restarts={victim.restarts}")
        return {"infos": len(infos), "errors": len(errors), "pids": (old_pid, new_pid)}
    finally:
        await worker.kill()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--calls", type=int, default=8)
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    asyncio.run(main(args.tasks, args.calls))
