"""A QueueWorker runs one short-lived child per chunk, two at a time, and collects exit codes.

Usage: python -m examples.queue_batch [--chunks 8] [--size 20000] [--concurrency 2]
"""

import argparse
import asyncio
import hashlib
import random
import zlib

from relieve_app.pool import QueueWorker, ScriptTask

CHUNK = "examples.chunk:Chunk"
WORDS = ("relieve", "process", "pool", "child", "master", "socket", "channel", "queue", "worker", "task")


def make_chunks(count, size, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=size // 6)) for _ in range(count)]


async def main(chunks=8, size=20_000, concurrency=2, out=print):
    """Returns the exit codes in chunk order; every reported digest is checked here."""
    texts = make_chunks(chunks, size)
    worker = QueueWorker(concurrency=concurrency)
    reports = {}

    def on_chunk(index, raw, packed, digest):
        reports[index] = digest
        out(f"chunk {index}: {raw} -> {packed} bytes, sha256 {digest[:16]}")

    for index, text in enumerate(texts):
        worker.add(ScriptTask(CHUNK, name=f"chunk{index}", arguments=[index, text]))
    worker.on("chunk", on_chunk)
    try:
        codes = await worker.run()
    finally:
        await worker.kill()
    for index, text in enumerate(texts):
        expected = hashlib.sha256(zlib.compress(text.encode(), 9)).hexdigest()
        if reports.get(index) != expected:
            raise AssertionError(f"chunk {index}: wrong or missing digest")
    out(f"exit codes: {codes}")
    return codes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--size", type=int, default=20_000, help="bytes of text per chunk, roughly")
    parser.add_argument("--concurrency", type=int, default=2)
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    asyncio.run(main(args.chunks, args.size, args.concurrency))
