"""Pack the local CIFAR-100 copy into losslessly compressed WebP mosaics small enough to send to a lent GPU.

A device call carries at most 64 MiB; the dataset's ``.npz`` files hold 168 MB. Each chunk of 2,500 images
becomes one 1600x1600 lossless WebP (about 55% of the raw bytes); labels and ``meta.json`` travel as they are.
``unpack_cifar.py`` rebuilds ``train.npz`` / ``test.npz`` there and checks each ``x`` against the sha256
in ``meta.json``, so a run there trains on exactly the arrays a run here does.

    python scripts/device/pack_cifar.py ../shared/data/cifar100 .gpu_a .gpu_b --split-at 9
"""

from __future__ import annotations

import argparse
import io
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

CHUNK = 2500  # images per mosaic: 50 x 50 tiles of 32 x 32


def encode(x: np.ndarray) -> bytes:
    """One lossless WebP of ``x`` (CHUNK, 32, 32, 3) laid out as a 50 x 50 mosaic."""
    side = int(np.sqrt(len(x)))
    mosaic = x.reshape(side, side, 32, 32, 3).transpose(0, 2, 1, 3, 4).reshape(side * 32, side * 32, 3)
    out = io.BytesIO()
    Image.fromarray(mosaic).save(out, "WEBP", lossless=True, quality=100, method=6)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder holding train.npz, test.npz, meta.json")
    parser.add_argument("outs", type=Path, nargs="+", help="folders to spread the chunks over (one per call)")
    parser.add_argument("--split-at", type=int, nargs="*", default=[], help="chunk index where each next folder starts")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    jobs = []
    for split in ("test", "train"):
        arrays = np.load(args.source / f"{split}.npz", allow_pickle=False)
        x = arrays["x"]
        assert len(x) % CHUNK == 0, f"{split}: {len(x)} images is not a multiple of {CHUNK}"
        for start in range(0, len(x), CHUNK):
            jobs.append((f"{split}_{start // CHUNK:02d}.webp", x[start : start + CHUNK]))
        labels = {k: arrays[k] for k in ("y_fine", "y_coarse")}
        args.outs[0].mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.outs[0] / f"{split}_labels.npz", n=np.int64(len(x)), **labels)
    shutil.copy(args.source / "meta.json", args.outs[0] / "meta.json")
    bounds = [0, *args.split_at, len(jobs)]
    with ProcessPoolExecutor(args.jobs) as pool:
        blobs = list(pool.map(encode, [x for _, x in jobs]))
    for folder, lo, hi in zip(args.outs, bounds, bounds[1:]):
        folder.mkdir(parents=True, exist_ok=True)
        for (name, _), blob in zip(jobs[lo:hi], blobs[lo:hi]):
            (folder / name).write_bytes(blob)
        size = sum(f.stat().st_size for f in folder.iterdir())
        print(f"{folder}: chunks {lo}-{hi - 1}, {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
