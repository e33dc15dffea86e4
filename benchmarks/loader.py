"""The data loader alone: the images/s it serves from each kind of data, against what a GPU trains at.

Three sources, at the demo's size and batch (32x32 grey, 128, horizontal flips as the demo trains):
    builtin  the built-in horseshoes rendered once at start (data.count, the demo's default), served from memory
    stream   the endless built-in stream (data.count=none): every batch rendered afresh
    folder   a folder of 100 PNGs (128x128 grey, fitted to 32x32): decoded once at start, served from memory
On CUDA each batch is also pinned and copied to the device with non_blocking=True, as the trainer
does, and the time includes the copy. One thread: the trainer's main thread loads the data.

    python benchmarks/loader.py [--device cuda] [--size 32] [--batch 128]   (also measure.py's data task)
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from horseshoe.data import BatchLoader, DataConfig, build_dataset
from horseshoe.data.horseshoes import render

FOLDER_IMAGES, FOLDER_SIDE = 100, 128


def write_pngs(folder: Path, count: int = FOLDER_IMAGES, side: int = FOLDER_SIDE) -> None:
    """`count` grey PNGs of built-in horseshoes, side x side pixels, as a user's folder would hold."""
    for i, image in enumerate(render(7, np.arange(count), side)):
        Image.fromarray(image[..., 0]).save(folder / f"{i:03d}.png")


def batch_seconds(loader: BatchLoader, device: torch.device, warmup: int = 3, repeats: int = 30) -> list[float]:
    """Seconds per batch: loaded, and on CUDA copied to the device (from pinned memory) and waited for."""
    def one() -> None:
        batch = loader.next_batch()
        if device.type == "cuda":
            batch.to(device, non_blocking=True)
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        one()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        one()
        times.append(time.perf_counter() - start)
    return times


def measure(size: int, batch: int, device: torch.device) -> dict:
    """images/s per source (median batch), the folder's decoding rate, and the renderer's alone."""
    torch.set_num_threads(1)
    pin = device.type == "cuda"
    out = {}
    start = time.perf_counter()
    for i in range(0, 4096, 512):
        render(0, np.arange(i, i + 512), size)
    out["render_images_per_sec_one_core"] = 4096 / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        write_pngs(Path(tmp))
        configs = {"builtin": DataConfig(image_size=size), "stream": DataConfig(image_size=size, count=None),
                   "folder": DataConfig(path=tmp, image_size=size)}
        for name, config in configs.items():
            start = time.perf_counter()
            dataset = build_dataset(config)
            if name == "folder":
                out["folder_decode_images_per_sec"] = FOLDER_IMAGES / (time.perf_counter() - start)
            loader = BatchLoader(dataset, config, batch_size=batch, pin_memory=pin)
            out[f"loader_{name}_images_per_sec"] = batch / statistics.median(batch_seconds(loader, device))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    result = measure(args.size, args.batch, torch.device(args.device))
    print(json.dumps({"task": "data", "size": args.size, "batch": args.batch, "device": args.device, **result}))


if __name__ == "__main__":
    main()
