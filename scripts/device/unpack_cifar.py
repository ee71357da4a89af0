"""Rebuild ``train.npz`` / ``test.npz`` from the WebP mosaics of ``pack_cifar.py`` and check them.

    python scripts/device/unpack_cifar.py OUT_DIR .gpu_a .gpu_b

Each split's ``x`` must hash to the sha256 that ``meta.json`` gives, else it stops with an error: a run on a
lent GPU is then known to see the very images a run here sees.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def decode(path: Path) -> np.ndarray:
    """The (2500, 32, 32, 3) uint8 images of one mosaic."""
    mosaic = np.asarray(Image.open(path).convert("RGB"))
    side = mosaic.shape[0] // 32
    return mosaic.reshape(side, 32, side, 32, 3).transpose(0, 2, 1, 3, 4).reshape(side * side, 32, 32, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("sources", type=Path, nargs="+")
    args = parser.parse_args()
    meta_file = next(s / "meta.json" for s in args.sources if (s / "meta.json").exists())
    meta = json.loads(meta_file.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy(meta_file, args.out / "meta.json")
    for split in ("train", "test"):
        # By name: a chunk sent in two calls counts once.
        chunks = {p.name: p for s in args.sources for p in s.glob(f"{split}_[0-9]*.webp")}
        x = np.concatenate([decode(chunks[name]) for name in sorted(chunks)])
        labels = np.load(next(s / f"{split}_labels.npz" for s in args.sources if (s / f"{split}_labels.npz").exists()))
        digest = hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()
        expected = meta["splits"][split]["x_sha256"]
        if len(x) != int(labels["n"]) or digest != expected:
            raise SystemExit(
                f"{split}: {len(x)} images, sha256 {digest}; meta.json expects {int(labels['n'])}, {expected}"
            )
        np.savez(args.out / f"{split}.npz", x=x, y_fine=labels["y_fine"], y_coarse=labels["y_coarse"])
        print(f"{split}: {len(x)} images, sha256 matches meta.json")


if __name__ == "__main__":
    main()
