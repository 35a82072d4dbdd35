"""S3 pull throughput: ``noa_core.data.storage.pull`` (verified) against plain boto3.

One process run, one S3 server (moto's ``ThreadedMotoServer`` on 127.0.0.1, in a child process
so its request handling does not share this process's GIL), one published dataset: a
``dataset.h5`` of ``--mib`` MiB of random bytes plus a small ``tokenizer/`` directory, pushed
with its ``MANIFEST.json``. Each repeat downloads the whole dataset into an empty directory

- ``noa_pull``: ``pull(s3://…, DST)``: manifest first, ranged GETs in parallel into a partial
  file, SHA-256 of every file overlapped with the transfer, size and digest checked, fsync,
  rename;
- ``boto3_download_file``: ``client.download_file`` per object with the same multipart
  threshold, chunk size and concurrency; no manifest, no verification;

after one untimed warm-up of each, alternating which goes first. Prints one JSON object: MiB/s
per method (median over repeats, every run listed), the client process's CPU time per method,
and the ratio noa_pull / boto3_download_file (target ≥ 0.9).

Absolute rates measure moto more than either client: moto answers every ranged GET by reading
the whole object under a per-object lock, so one 256 MiB object in 8 MiB ranges costs the server
about 32 full reads. Both methods pay that alike; the ratio is what this benchmark is for.

Usage: python benchmarks/bench_s3.py [--mib 256] [--repeats 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

MiB = 1 << 20
BUCKET = "noa-bench"
PREFIX = "phase0/bench"


def _serve(conn: Any) -> None:
    """Child process: run moto on 127.0.0.1 until told to stop; send the port back."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    conn.send(server.get_host_and_port()[1])
    conn.recv()  # any message: stop
    server.stop()


def _write_dataset(root: Path, mib: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    (root / "tokenizer").mkdir(parents=True)
    with open(root / "dataset.h5", "wb") as fh:
        for _ in range(mib):
            fh.write(rng.integers(0, 256, size=MiB, dtype=np.uint8).tobytes())
    for name, size in (("weights.safetensors", 3 * MiB), ("config.yaml", 300),
                       ("stats.json", 4096)):
        (root / "tokenizer" / name).write_bytes(rng.integers(0, 256, size, np.uint8).tobytes())


def _plain_boto3(client: Any, keys: list[str], dst: Path, config: Any) -> None:
    for key in keys:
        target = dst / key[len(PREFIX) + 1:]
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(BUCKET, key, str(target), Config=config)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=256, help="size of dataset.h5 in MiB")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: tmp)")
    args = ap.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    import boto3
    from boto3.s3.transfer import TransferConfig

    from noa_core.data.s3_client import S3Settings
    from noa_core.data.storage import pull, push

    parent, child = mp.get_context("spawn").Pipe()
    server = mp.get_context("spawn").Process(target=_serve, args=(child,), daemon=True)
    server.start()
    endpoint = f"http://127.0.0.1:{parent.recv()}"
    work = Path(tempfile.mkdtemp(prefix="bench-s3-", dir=args.workdir))
    try:
        settings = S3Settings(endpoint_url=endpoint, addressing_style="path")
        config = TransferConfig(multipart_threshold=settings.multipart_threshold,
                                multipart_chunksize=settings.multipart_chunksize,
                                max_concurrency=settings.max_concurrency)
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket=BUCKET)
        _write_dataset(work / "src", args.mib)
        push(work / "src", f"s3://{BUCKET}/{PREFIX}", settings=settings)
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]]
        total = sum(o["Size"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"])

        def run_noa(dst: Path) -> None:
            pull(f"s3://{BUCKET}/{PREFIX}", dst, settings=settings)

        def run_plain(dst: Path) -> None:
            _plain_boto3(client, keys, dst, config)

        runs: dict[str, list[float]] = {"noa_pull": [], "boto3_download_file": []}
        cpu: dict[str, list[float]] = {"noa_pull": [], "boto3_download_file": []}
        methods = [("noa_pull", run_noa), ("boto3_download_file", run_plain)]
        for name, fn in methods:  # warm-up, untimed: loads botocore's models, warms the server
            fn(work / f"warm-{name}")
            shutil.rmtree(work / f"warm-{name}")
        for i in range(args.repeats):
            for name, fn in methods if i % 2 == 0 else methods[::-1]:
                dst = work / f"dst-{name}-{i}"
                started, cpu_started = time.perf_counter(), time.process_time()
                fn(dst)
                runs[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - cpu_started)
                shutil.rmtree(dst)
    finally:
        parent.send("stop")
        server.join(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    rate = {k: total / MiB / statistics.median(v) for k, v in runs.items()}
    print(json.dumps({
        "bytes": total, "files": len(keys), "repeats": args.repeats,
        "multipart_chunksize_mib": settings.multipart_chunksize / MiB,
        "max_concurrency": settings.max_concurrency,
        "MiB_per_s": {k: round(v, 1) for k, v in rate.items()},
        "seconds": {k: [round(s, 3) for s in v] for k, v in runs.items()},
        "client_cpu_seconds_median": {k: round(statistics.median(v), 3) for k, v in cpu.items()},
        "ratio_noa_over_boto3": round(rate["noa_pull"] / rate["boto3_download_file"], 3),
        "target_ratio": 0.9,
        "cpus": os.cpu_count(), "python": platform.python_version(),
    }, indent=2))


if __name__ == "__main__":
    main()
