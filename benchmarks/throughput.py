"""Training throughput of the harness against plain Keras, side by side in one process.

Arms (same data, batch size 32, same model):
  1. peer             plain ``model.fit`` on float32 arrays, no augmentation
  2. harness          the harness's trainer (``cifar_exp.train.train``), winning config, augmentation none
  3. harness+aug      the same with shift_flip augmentation
  4. harness+aug -mlf the same as 3 with MLflow tracking switched off

Each arm trains ``1 + repeats`` epochs on ``--images`` training images; the first epoch is warm-up. The
arms run ``--rounds`` times, interleaved (ABCDABCD), and each arm's figure is the median images/s of its
timed epochs over all rounds (training part of each epoch, validation excluded). Printed: images/s, the
ratio to the peer, the seconds one 41,500-image epoch takes, the achieved GFLOP/s of the training step
(6 FLOPs per multiply-add: forward plus the two backward products) against the measured float32 matmul
peak, the process's peak resident memory after each arm, and what MLflow tracking costs.

    python benchmarks/throughput.py --data ../shared/data/cifar100      # real CIFAR-100
    python benchmarks/throughput.py                                      # random data of the same shape
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from cifar_exp import callbacks, models, train  # noqa: E402
from cifar_exp.config import CONF_DIR, register  # noqa: E402
from cifar_exp.data import load_dataset  # noqa: E402
from cifar_exp.tracking import tracked_run  # noqa: E402

EPOCH_IMAGES = 41_500


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_peak_gflops(n: int = 1024, repeats: int = 20) -> float:
    """Best float32 matmul rate of the active Keras backend on this machine."""
    a = keras.ops.convert_to_tensor(np.random.default_rng(0).random((n, n), dtype=np.float32))
    keras.ops.convert_to_numpy(keras.ops.matmul(a, a))
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, a))
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def random_copy(folder: Path, train_images: int) -> Path:
    """A random dataset in the npz layout the loader accepts (labels balanced over 100 classes)."""
    rng = np.random.default_rng(0)
    for name, n in (("train", train_images), ("test", 1000)):
        y = np.arange(n) % 100
        np.savez(
            folder / f"{name}.npz",
            x=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            y_fine=y.astype(np.uint8),
            y_coarse=(y % 20).astype(np.uint8),
        )
    return folder


def peer(data_path: str, images: int, epochs: int) -> list[float]:
    """Plain Keras: float32 arrays in memory, model.fit, no augmentation."""
    data = load_dataset("local", data_path, val_split=0, train_size=images, test_size=1000)
    x = data.x_train.astype("float32")
    y = data.y_train
    model = models.report_cnn(100, (0.1, 0.25, 0.5))
    model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy", metrics=["accuracy"])
    stats = callbacks.EpochStats(len(y))
    history = model.fit(x, y, batch_size=32, epochs=epochs, callbacks=[stats], verbose=0).history
    return history["images_per_second"]


def harness(
    data_path: str, pool: int, epochs: int, augmentation: str, tracking: bool, store: str
) -> tuple[list[float], float]:
    """The harness's own trainer on the winning config; returns per-epoch images/s and the run's wall time."""
    register()
    overrides = [
        "data=local",
        f"data.path={data_path}",
        f"data.train_size={pool}",
        "data.test_size=1000",
        f"augmentation={augmentation}",
        f"trainer.epochs={epochs}",
        "trainer.verbose=0",
        f"tracking.enabled={str(tracking).lower()}",
        f"tracking.uri={store}",
        "tracking.experiment=bench",
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    start = time.perf_counter()
    outcome = train.train(cfg)
    return outcome.history["images_per_second"], time.perf_counter() - start


def metric_logging_seconds(store: str, epochs: int = 20) -> float:
    """Seconds one epoch's metric logging (the trainer's 11 per-epoch keys) takes against the store."""
    keys = [
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
        "epoch_seconds",
        "images_per_second",
        "a",
        "b",
        "c",
        "d",
    ]
    with tracked_run(store, "bench", "logging-cost") as run:
        start = time.perf_counter()
        for epoch in range(epochs):
            run.log_metrics({k: 0.5 for k in keys}, step=epoch)
        return (time.perf_counter() - start) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a local CIFAR-100 copy (default: random data of the same shape)")
    parser.add_argument("--images", type=int, default=8300, help="training images per epoch (default 8300)")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per arm, after one warm-up epoch")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="run every arm this many times, interleaved (ABCDABCD), so drifting machine load "
        "hits all arms alike; the median is over the timed epochs of all rounds",
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    epochs = 1 + args.repeats
    pool = math.ceil(args.images / (1 - 0.17))  # the harness validates on 17% of its pool; the peer trains on all
    scratch = tempfile.TemporaryDirectory(prefix="cifar_bench_")
    data_path = (
        args.data if args.data and Path(args.data, "train.npz").exists() else str(random_copy(Path(scratch.name), pool))
    )
    store = f"sqlite:///{scratch.name}/mlflow.db"
    macs = models.multiply_adds(models.report_cnn(100, (0, 0, 0)))
    peak = matmul_peak_gflops()
    print(
        f"backend {keras.backend.backend()}, data {'real ' + data_path if args.data else 'random'}, "
        f"{args.images} images/epoch, {args.repeats} timed epochs per arm, batch 32; "
        f"float32 matmul peak {peak:.1f} GFLOP/s; model {macs / 1e6:.1f} M multiply-adds per image",
        flush=True,
    )

    results: dict[str, dict] = {}
    arms = [
        ("peer: plain fit, float32 arrays", lambda: (peer(data_path, args.images, epochs), None)),
        ("harness, no augmentation", lambda: harness(data_path, pool, epochs, "none", True, store)),
        ("harness, shift_flip", lambda: harness(data_path, pool, epochs, "shift_flip", True, store)),
        ("harness, shift_flip, tracking off", lambda: harness(data_path, pool, epochs, "shift_flip", False, store)),
    ]
    for round_number in range(1, args.rounds + 1):
        for name, arm in arms:
            rates, wall = arm()
            entry = results.setdefault(name, {"epoch_rates": [], "timed_rates": [], "run_seconds": []})
            entry["epoch_rates"].append(rates)
            entry["timed_rates"] += rates[1:]
            if wall is not None:
                entry["run_seconds"].append(wall)
            entry["peak_rss_mib"] = peak_rss_mib()
            print(f"  round {round_number}, {name}: epochs {', '.join(f'{r:.0f}' for r in rates)} images/s", flush=True)
    for entry in results.values():
        entry["images_per_second"] = statistics.median(entry["timed_rates"])
        entry["run_seconds"] = statistics.median(entry["run_seconds"]) if entry["run_seconds"] else None

    base = results["peer: plain fit, float32 arrays"]["images_per_second"]
    print("\n| arm | images/s | ratio to peer | s per 41,500-image epoch | GFLOP/s | % of matmul peak | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        gflops = 6 * macs * r["images_per_second"] / 1e9
        r.update(
            ratio=r["images_per_second"] / base,
            epoch_seconds=EPOCH_IMAGES / r["images_per_second"],
            gflops=gflops,
            peak_fraction=gflops / peak,
        )
        print(
            f"| {name} | {r['images_per_second']:.0f} | {r['ratio']:.2f}x | {r['epoch_seconds']:.0f} "
            f"| {gflops:.1f} | {100 * r['peak_fraction']:.0f}% | {r['peak_rss_mib']:.0f} |"
        )
    on, off = results["harness, shift_flip"], results["harness, shift_flip, tracking off"]
    extra = on["run_seconds"] - off["run_seconds"]
    report_run = 150 * EPOCH_IMAGES / off["images_per_second"]
    per_epoch = metric_logging_seconds(store)
    cost = (extra + 150 * per_epoch) / report_run
    print(
        f"\ntracking: the {epochs}-epoch run took {on['run_seconds']:.1f} s with MLflow, {off['run_seconds']:.1f} s "
        f"without: {extra:+.1f} s (params, per-epoch metrics, plots, .h5 upload). Against the report's 150-epoch "
        f"run on 41,500 images ({report_run / 3600:.1f} h at {off['images_per_second']:.0f} images/s) that is "
        f"{100 * cost:.2f}% of training time, counting {1000 * per_epoch:.1f} ms of metric logging per epoch "
        f"150 times on top (an upper bound)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"matmul_peak_gflops": peak, "macs_per_image": macs, "arms": results, "tracking_cost": cost}, indent=2
            )
        )
    scratch.cleanup()


if __name__ == "__main__":
    sys.exit(main())
