"""One measurement in a fresh process; prints one JSON line. Run by benchmarks/run.py.

Tasks: peak (matmul FLOP/s), train (one optimizer step), sample (DDIM, 50 steps), tensors (exact
peak tensor memory of a step and a forward), convs (the network's convolutions alone), data (the loader
alone, loader.py).
Every model is measured the same way: same batch, threads, allocator setting, AdamW (fused where
PyTorch has it), MSE loss against a fixed target; the median of timed steps after warm-up.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flops import count_flops  # noqa: E402
from models import BUILDERS, demo_model  # noqa: E402

from horseshoe.runtime import keep_memory_mapped  # noqa: E402


def rss_mb() -> float:
    """The process's high-water resident memory, MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def peak(args, device) -> dict:
    """Matmul FLOP/s for 4096^2 products: the machine's ceiling for this benchmark's percentages."""
    n = 4096 if device.type == "cuda" else 2048
    out = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        times = timed(lambda a=a, b=b: torch.mm(a, b), device, 3, args.repeats * 2)
        out[f"matmul_{name}_gflops"] = 2 * n**3 / statistics.median(times) / 1e9
    # oneDNN's float32 path (convolutions use it) is faster than torch.mm's on some CPUs: a 1x1 conv is a matmul.
    x = torch.randn(64, 512, 32, 32, device=device)
    conv = torch.nn.Conv2d(512, 512, 1, bias=False).to(device)
    with torch.no_grad():
        times = timed(lambda: conv(x), device, 3, args.repeats)
    out["conv1x1_fp32_gflops"] = 2 * 64 * 512 * 512 * 32 * 32 / statistics.median(times) / 1e9
    return out


def build(args, device):
    if args.model == "demo":
        return demo_model(args.size)
    return BUILDERS[args.model](args.size, args.channels)


def network_inputs(args, built, device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of noisy images and their integer timesteps, as the network takes them."""
    x = torch.randn(args.batch, built.channels, args.size, args.size, device=device)
    return x, torch.randint(0, 1000, (args.batch,), device=device)


def training_setup(args, device):
    """(built, make_step): the network in train mode and, for a forward function, one optimizer step
    (MSE against a fixed target, AdamW, args.precision) on a fixed batch."""
    torch.manual_seed(0)
    built = build(args, device)
    model = built.module.to(device).train()
    x, t = network_inputs(args, built, device)
    target = torch.randn_like(x)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type in ("cpu", "cuda"))

    def make_step(forward):
        def step():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
                loss = (forward(x, t).float() - target).pow(2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step

    return built, make_step


def train(args, device) -> dict:
    built, make_step = training_setup(args, device)
    model = built.module

    # Memory is the high-water mark over everything a step needs beyond the model, its inputs and the
    # Python runtime: activations, gradients, optimizer state (the eager step that counts FLOPs included).
    baseline = rss_mb()
    flops = count_flops(make_step(built.forward))  # forward + backward (+ AdamW, ~0 FLOPs), counted eagerly
    step = make_step(torch.compile(built.forward) if args.mode == "compile" else built.forward)
    compile_seconds = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if args.mode == "compile":
        start = time.perf_counter()
        step()
        compile_seconds = time.perf_counter() - start
    times = timed(step, device, args.warmup, args.repeats)
    seconds = statistics.median(times)
    result = {"params_m": sum(p.numel() for p in model.parameters()) / 1e6,
              "train_gflop_per_image": flops / args.batch / 1e9,
              "images_per_sec": args.batch / seconds, "gflops": flops / seconds / 1e9,
              "step_seconds": seconds, "spread": (max(times) - min(times)) / seconds,
              "peak_rss_mb": rss_mb(), "step_memory_mb": rss_mb() - baseline,
              "compile_seconds": compile_seconds}
    if device.type == "cuda":
        result["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def sample(args, device) -> dict:
    """DDIM, 50 steps, a batch of args.batch images, bf16 autocast, each library's own sampler."""
    torch.manual_seed(0)
    built = build(args, device)
    model = built.module.to(device).eval()
    channels = built.channels
    baseline = rss_mb()
    flops_per_forward = count_flops(lambda: built.forward(*network_inputs(args, built, device)), inference=True)
    if args.model == "diffusers":
        from diffusers import DDIMPipeline, DDIMScheduler

        pipe = DDIMPipeline(unet=model, scheduler=DDIMScheduler(num_train_timesteps=1000))
        pipe.set_progress_bar_config(disable=True)

        def run():
            pipe(batch_size=args.batch, num_inference_steps=50, output_type="np")
    elif args.model == "lucidrains":
        from models import _import_lucidrains

        diffusion = _import_lucidrains().GaussianDiffusion(model, image_size=args.size, timesteps=1000,
                                                            sampling_timesteps=50).to(device)

        def run():
            diffusion.sample(batch_size=args.batch)
    else:
        from horseshoe.diffusion import Denoiser, make_schedule
        from horseshoe.sampling import SampleConfig, generate

        denoiser = Denoiser(built.forward, make_schedule("linear", 1000), "eps")

        def run():
            ddim_50 = SampleConfig("ddim", steps=50, spacing="trailing", lambda_min=None, clip_x0=False)
            generate(denoiser, args.batch, (channels, args.size, args.size), ddim_50, batch_size=args.batch,
                     device=device)

    def timed_run():
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
            run()

    times = timed(timed_run, device, 1, max(2, args.repeats // 3))
    seconds = statistics.median(times)
    return {"images_per_sec": args.batch / seconds, "seconds_per_batch": seconds,
            "gflops": 50 * flops_per_forward / seconds / 1e9,
            "forward_gflop_per_image": flops_per_forward / args.batch / 1e9,
            "peak_rss_mb": rss_mb(), "sample_memory_mb": rss_mb() - baseline}


def tensors(args, device) -> dict:
    """Peak bytes of live tensors (exact, see tensor_memory.py) in one training step and one forward."""
    from tensor_memory import LiveTensorBytes

    built, make_step = training_setup(args, device)
    step = make_step(built.forward)
    step()  # optimizer state exists before counting, as it would after the first step of training
    with LiveTensorBytes() as train_step:
        step()
    built.module.eval()
    x, t = network_inputs(args, built, device)
    bf16 = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    with torch.inference_mode(), bf16, LiveTensorBytes() as forward:
        built.forward(x, t)
    return {"train_tensor_peak_mb": train_step.peak / 2**20, "forward_tensor_peak_mb": forward.peak / 2**20}


def convs(args, device) -> dict:
    """Seconds the network's convolutions take alone (conv_floor.py), for a training step (forward and
    backward) and a forward pass, in the contiguous layout the networks use and in channels_last."""
    from conv_floor import conv_calls, replay

    torch.manual_seed(0)
    built = build(args, device)
    calls = conv_calls(built.module.to(device), built.forward, *network_inputs(args, built, device))
    out = {"conv_calls": len(calls), "conv_forward_gflop_per_image": sum(c.flops() for c in calls) / args.batch / 1e9}
    for layout, memory_format in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        for name, train in (("train", True), ("forward", False)):
            # Two warm-up calls each: oneDNN picks and caches its kernel on the first.
            out[f"conv_{name}_seconds_{layout}"] = sum(
                statistics.median(timed(replay(call, train, memory_format, device), device, 2, args.repeats))
                for call in calls)
    return out


def data(args, device) -> dict:
    """The loader alone (loader.py): built-in, stream and PNG-folder images/s, the renderer on one core."""
    from loader import measure

    return measure(args.size, args.batch, device)


TASKS = {"peak": peak, "train": train, "sample": sample, "tensors": tensors, "convs": convs, "data": data}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("task", choices=list(TASKS))
    parser.add_argument("--model", default="horseshoe")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--mode", default="eager", choices=["eager", "compile"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    keep_memory_mapped()  # the same allocator setting for every model (PERF-NOTES)
    device = torch.device(args.device)
    result = TASKS[args.task](args, device)
    print(json.dumps({"task": args.task, "model": args.model, "size": args.size, "batch": args.batch,
                      "precision": args.precision, "mode": args.mode, "device": args.device,
                      "threads": torch.get_num_threads(), **result}))


if __name__ == "__main__":
    main()
