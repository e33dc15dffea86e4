"""The benchmark results as Markdown tables, with ratios against the peers from the same run."""

from __future__ import annotations


def _find(results, **match):
    for r in results:
        if all(r.get(k) == v for k, v in match.items()) and "error" not in r:
            return r
    return None


def _fmt(value, digits=1):
    return "–" if value is None else f"{value:.{digits}f}"


def _conv_floor(results: list[dict]) -> list[str]:
    """The convolutions-alone table (benchmarks/conv_floor.py) and the ratio it bounds."""
    rows, steps, floors = [], {}, {}
    for model in ("horseshoe", "diffusers"):
        r = _find(results, task="convs", model=model, size=32)
        train = _find(results, task="train", model=model, size=32, precision="bf16", mode="eager")
        sample = _find(results, task="sample", model=model)
        if r is None or train is None or sample is None:
            continue
        floors[model] = r
        step, forward = train["batch"] / train["images_per_sec"], sample["seconds_per_batch"] / 50
        steps[model] = (step, forward)
        train_convs, forward_convs = r["conv_train_seconds_contiguous"], r["conv_forward_seconds_contiguous"]
        rows.append(f"| {model} | {step:.3f} | {train_convs:.3f} ({100 * train_convs / step:.0f}%) | "
                    f"{r['conv_train_seconds_channels_last']:.3f} | {forward:.3f} | "
                    f"{forward_convs:.3f} ({100 * forward_convs / forward:.0f}%) | "
                    f"{r['conv_forward_seconds_channels_last']:.3f} |")
    if not rows:
        return []
    lines = ["", "## The floor: each network's convolutions alone, bf16, batch 64, 32x32", "",
             "Every convolution one forward pass makes, replayed alone with the same shapes (forward and backward "
             "for training): the time a step would take if everything else took none.", "",
             "| network | training step (s) | its convolutions alone (s) | in channels_last (s) "
             "| sampling step (s) | its convolutions alone (s) | in channels_last (s) |",
             "|---|---|---|---|---|---|---|", *rows]
    if "horseshoe" in floors and "diffusers" in steps:
        ours = floors["horseshoe"]
        train_step, forward = steps["diffusers"]
        lines += ["", f"So against diffusers' measured steps, horseshoe's training can be at most "
                      f"{train_step / ours['conv_train_seconds_contiguous']:.2f}x faster with these convolutions "
                      f"({train_step / ours['conv_train_seconds_channels_last']:.2f}x in channels_last), and its "
                      f"sampling at most {forward / ours['conv_forward_seconds_contiguous']:.2f}x "
                      f"({forward / ours['conv_forward_seconds_channels_last']:.2f}x)."]
    return lines


def markdown(meta: dict, results: list[dict]) -> str:
    peak = _find(results, task="peak") or {}
    bf16_peak, fp32_peak = peak.get("matmul_bf16_gflops"), max(peak.get("matmul_fp32_gflops", 0),
                                                                 peak.get("conv1x1_fp32_gflops", 0)) or None
    lines = [f"# Benchmark: {meta['date']} on {meta['machine']}", "",
             f"Matmul peak measured in this run: bf16 {_fmt(bf16_peak, 0)} GFLOP/s, float32 "
             f"{_fmt(peak.get('matmul_fp32_gflops'), 0)} (torch.mm) / {_fmt(peak.get('conv1x1_fp32_gflops'), 0)} "
             f"(oneDNN 1x1 conv). Percentages are of the bf16 peak for bf16 rows, of the better float32 figure "
             f"for float32 rows (oneDNN's 3x3 convolutions can beat both float32 figures, so those rows may pass "
             f"100%). Medians of timed steps after warm-up; each figure in its own process.", ""]

    lines += ["## Training step (forward + backward + AdamW), matched network, batch 64", "",
              "| network | size | precision | mode | params (M) | GFLOP/image | images/s | GFLOP/s | % of peak "
              "| vs diffusers | step memory (MB) | compile (s) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for size in (32, 64):
        for precision in ("bf16", "fp32"):
            for mode in ("eager", "compile"):
                reference = _find(results, task="train", model="diffusers", size=size, precision=precision, mode=mode)
                for model in ("horseshoe", "diffusers", "lucidrains"):
                    r = _find(results, task="train", model=model, size=size, precision=precision, mode=mode)
                    if r is None:
                        continue
                    top = bf16_peak if precision == "bf16" else fp32_peak
                    share = 100 * r["gflops"] / top if top else None
                    ratio = r["gflops"] / reference["gflops"] if reference else None
                    lines.append(f"| {model} | {size} | {precision} | {mode} | {r['params_m']:.2f} | "
                                 f"{r['train_gflop_per_image']:.2f} | {r['images_per_sec']:.1f} | {r['gflops']:.0f} | "
                                 f"{_fmt(share, 0)}% | {_fmt(ratio, 2)}x | {r['step_memory_mb']:.0f} | "
                                 f"{_fmt(r.get('compile_seconds'), 0)} |")

    lines += ["", "## Sampling: DDIM, 50 steps, batch 64, 32x32, bf16 autocast", "",
              "| network | sampler | images/s | GFLOP/s | vs diffusers | memory (MB) |", "|---|---|---|---|---|---|"]
    reference = _find(results, task="sample", model="diffusers")
    sampler = {"horseshoe": "horseshoe.sampling.ddim", "diffusers": "DDIMPipeline",
               "lucidrains": "GaussianDiffusion.ddim_sample"}
    for model in ("horseshoe", "diffusers", "lucidrains"):
        r = _find(results, task="sample", model=model)
        if r is not None:
            ratio = r["images_per_sec"] / reference["images_per_sec"] if reference else None
            lines.append(f"| {model} | {sampler[model]} | {r['images_per_sec']:.2f} | {r['gflops']:.0f} | "
                         f"{_fmt(ratio, 2)}x | {r['sample_memory_mb']:.0f} |")

    lines += ["", "## Exact tensor memory: peak bytes of live tensors, bf16 autocast, batch 64", "",
              "Unlike resident memory above (which moves by up to ±100 MB between identical runs), these are "
              "exact: activations, saved tensors and gradients (benchmarks/tensor_memory.py).", "",
              "| network | size | training step (MB) | vs diffusers | forward (MB) | vs diffusers |",
              "|---|---|---|---|---|---|"]
    for size in (32, 64):
        reference = _find(results, task="tensors", model="diffusers", size=size)
        for model in ("horseshoe", "diffusers", "lucidrains"):
            r = _find(results, task="tensors", model=model, size=size)
            if r is None:
                continue
            ratios = [r[k] / reference[k] if reference else None
                      for k in ("train_tensor_peak_mb", "forward_tensor_peak_mb")]
            lines.append(f"| {model} | {size} | {r['train_tensor_peak_mb']:.0f} | {_fmt(ratios[0], 2)}x | "
                         f"{r['forward_tensor_peak_mb']:.0f} | {_fmt(ratios[1], 2)}x |")

    lines += _conv_floor(results)

    lines += ["", "## horseshoe's default network (the demo's), 1 channel, batch 128", "",
              "| size | precision | mode | params (M) | GFLOP/image | images/s | GFLOP/s | step memory (MB) "
              "| compile (s) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r.get("task") == "train" and r.get("model") == "demo" and "error" not in r:
            lines.append(f"| {r['size']} | {r['precision']} | {r['mode']} | {r['params_m']:.2f} | "
                         f"{r['train_gflop_per_image']:.2f} | {r['images_per_sec']:.0f} | {r['gflops']:.0f} | "
                         f"{r['step_memory_mb']:.0f} | {_fmt(r.get('compile_seconds'), 0)} |")

    data = _find(results, task="data")
    if data:
        lines += ["", f"Data ({data['size']}x{data['size']}, batches of {data['batch']}, flips included, one thread"
                      f"{', pinned and copied to the device' if data['device'].startswith('cuda') else ''}): the "
                      f"loader serves {data['loader_builtin_images_per_sec']:.0f} built-in images/s (rendered once), "
                      f"{data['loader_stream_images_per_sec']:.0f} from the endless stream (rendered per batch; the "
                      f"renderer alone: {data['render_images_per_sec_one_core']:.0f}/s) and "
                      f"{data['loader_folder_images_per_sec']:.0f} from a folder of 100 PNGs (decoded once at "
                      f"{data['folder_decode_images_per_sec']:.0f} images/s)."]
    failed = [r for r in results if "error" in r]
    if failed:
        lines += ["", "Not measured:"] + [f"- {' '.join(r['command'])}: {r['error']}" for r in failed]
    return "\n".join(lines) + "\n"
