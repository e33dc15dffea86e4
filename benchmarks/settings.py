"""The speed settings, one at a time: horseshoe's own Trainer on the demo's config, steady-state images/s.

Each variant changes the demo config (32x32 grey, batch 128) by a few --set values and is measured in
its own process (process-wide CUDA flags and compile caches do not carry over): `warmup` steps
(compilation, cuDNN's autotuning), then `steps` timed steps, the device waited for at both ends.
Training steps only: the loader, noise, AdamW, EMA and (fp16) the gradient scaler included; no hooks.
The defaults of train.tf32, train.cudnn_benchmark, train.channels_last and train.compile are to be kept
only where this says they pay (on CPU the CUDA settings do nothing: only the others are measured there).

    python benchmarks/settings.py [--device cuda] [--steps 100] [--warmup 20] [--only default,fp32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

VARIANTS: dict[str, list[str]] = {
    "default": [],                                                   # auto precision: bf16 where fast
    "fp16": ["train.precision='fp16'"],                              # with the gradient scaler
    "fp32": ["train.precision='fp32'"],                              # TF32 on (the default) on CUDA
    "fp32_no_tf32": ["train.precision='fp32'", "train.tf32=false"],
    "no_cudnn_benchmark": ["train.cudnn_benchmark=false"],
    "channels_last": ["train.channels_last=true"],
    "compile": ["train.compile=true"],
}
CUDA_ONLY = ("fp32_no_tf32", "no_cudnn_benchmark")


def measure(variant: str, device: str, steps: int, warmup: int) -> dict:
    """Steady-state images/s of the demo config with the variant's overrides, in this process."""
    import torch

    from horseshoe.runs.demo import demo_config
    from horseshoe.runtime import keep_memory_mapped
    from horseshoe.training.trainer import Trainer

    keep_memory_mapped()
    config = demo_config([f"train.device={device!r}", *VARIANTS[variant]])
    trainer = Trainer(config)
    trainer.state.model.train()

    def sync() -> None:
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)

    start = time.perf_counter()
    for _ in range(warmup):
        trainer.train_step(config.train.steps)
    sync()
    warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(config.train.steps)
    sync()
    seconds = time.perf_counter() - start
    return {"variant": variant, "overrides": VARIANTS[variant], "device": str(trainer.device),
            "precision": trainer.precision, "images_per_sec": steps * config.train.batch_size / seconds,
            "step_ms": 1000 * seconds / steps, "warmup_seconds": warmup_seconds,
            "scaler_skipped": trainer.state.scaler_skipped, "settings": trainer.device_settings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--only", help="comma-separated variants (default: all that apply to the device)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # one measurement, in a child process
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.device, args.steps, args.warmup)))
        return
    names = args.only.split(",") if args.only else [
        name for name in VARIANTS if args.device.startswith("cuda") or name not in CUDA_ONLY]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    rows = []
    for name in names:
        command = [sys.executable, __file__, "--variant", name, "--device", args.device, "--steps", str(args.steps),
                   "--warmup", str(args.warmup)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            error = (done.stderr.strip().splitlines() or ["failed"])[-1]
            print(json.dumps({"variant": name, "error": error}), flush=True)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    base = next((r["images_per_sec"] for r in rows if r["variant"] == "default"), None)
    print("\n| variant | precision | images/s | vs default | step (ms) | warm-up (s) |\n|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['images_per_sec'] / base:.2f}x" if base else "–"
        print(f"| {r['variant']} | {r['precision']} | {r['images_per_sec']:.0f} | {ratio} | {r['step_ms']:.1f} | "
              f"{r['warmup_seconds']:.1f} |")


if __name__ == "__main__":
    main()
