"""How to spend a CPU's cores on many trainings: one job using every core, or one single-threaded job per core.

Runs the harness's own command (``python -m cifar_exp``, tracking off) on a subset of the real data, alternating
rounds of (a) one job with TensorFlow's default thread pools and (b) ``--cores`` jobs side by side, each with
``TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1``; each job's images per second are read from its epoch logs
(the first epoch, which traces the graph, left out). Prints each round and the aggregate ratio b / a: above 1, a
grid of trainings (``make reproduce``) finishes sooner as single-threaded jobs side by side (``hydra/launcher=joblib
hydra.launcher.n_jobs=<cores>`` with those two variables set).

    python benchmarks/parallel_jobs.py --data ../shared/data/cifar100
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RATE = re.compile(r"images_per_second: ([0-9.]+)")


def job(data: str, images: int, epochs: int, folder: Path, single_thread: bool) -> subprocess.Popen:
    """One training of the winning config on ``images`` training images, its output piped back."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if single_thread:
        env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    command = [
        sys.executable,
        "-m",
        "cifar_exp",
        "data=local",
        f"data.path={data}",
        f"data.train_size={images}",
        "data.test_size=500",
        f"trainer.epochs={epochs}",
        "trainer.verbose=2",
        "tracking.enabled=false",
        f"hydra.run.dir={folder}",
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def rate(process: subprocess.Popen) -> float:
    """A finished job's median images per second over its epochs after the first."""
    output, _ = process.communicate()
    rates = [float(r) for r in RATE.findall(output)][1:]
    if process.returncode != 0 or not rates:
        raise SystemExit(f"a job failed (exit {process.returncode}):\n{output[-3000:]}")
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a local CIFAR-100 copy (data.path)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2, help="jobs side by side (default: all)")
    parser.add_argument("--images", type=int, default=6000, help="training images per job")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per job (the first is not counted)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of both arms")
    args = parser.parse_args()
    ratios = []
    with tempfile.TemporaryDirectory(prefix="parallel_jobs_") as scratch:
        for number in range(args.rounds):
            one = rate(job(args.data, args.images, args.epochs, Path(scratch) / f"one{number}", False))
            side_by_side = [
                job(args.data, args.images, args.epochs, Path(scratch) / f"many{number}-{i}", True)
                for i in range(args.cores)
            ]
            many = [rate(p) for p in side_by_side]
            ratios.append(sum(many) / one)
            print(
                f"round {number + 1}: one job on all cores {one:.0f} images/s; {args.cores} single-threaded jobs "
                f"{' + '.join(f'{r:.0f}' for r in many)} = {sum(many):.0f} images/s; ratio {ratios[-1]:.2f}x",
                flush=True,
            )
    print(f"aggregate throughput, single-threaded jobs side by side / one job: {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
