"""The process-wide settings horseshoe makes for speed."""

import os
import subprocess
import sys

import pytest
import torch
from training_helpers import tiny_config

from horseshoe.runtime import pick_device, setup_device
from horseshoe.training.trainer import Trainer

# A fresh process runs six "steps", each allocating 1.5 GB in 100 MB tensors (each far above glibc's
# 32 MB ceiling for its mmap threshold) and freeing them, as a 64x64 training step does with its
# activations; it prints the page faults of each step.
STEPS = """
import resource, sys, torch
from horseshoe.runtime import keep_memory_mapped
applied = keep_memory_mapped() if sys.argv[1] == "keep" else False
faults = []
for step in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    live = [torch.ones(25_000_000) for _ in range(15)]
    del live
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, *faults)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_memory_mapped_lets_later_steps_reuse_memory_without_page_faults():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}  # as outside `make`
    pages_per_step = 1.5e9 / 4096
    for mode in ("keep", "default"):
        out = subprocess.run([sys.executable, "-c", STEPS, mode], env=env, capture_output=True, text=True,
                             check=True).stdout.split()
        assert out[0] == str(mode == "keep")
        later_steps = [int(n) for n in out[4:]]
        if mode == "keep":
            assert sum(later_steps) < 0.01 * pages_per_step
        else:  # the control: glibc unmaps every block when it is freed and maps it afresh
            assert min(later_steps) > 0.9 * pages_per_step


def cuda_flags() -> tuple[bool, bool, bool]:
    return (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)


@pytest.mark.parametrize("tf32, benchmark", [(True, True), (False, False), (True, False)])
def test_setup_device_sets_the_cuda_kernel_settings_and_leaves_a_cpu_alone(device, tf32, benchmark):
    dev = pick_device(device)
    before = cuda_flags()
    try:
        applied = setup_device(dev, tf32=tf32, cudnn_benchmark=benchmark)
        if dev.type == "cuda":
            assert applied == {"tf32": tf32, "cudnn_benchmark": benchmark}
            assert cuda_flags() == (tf32, tf32, benchmark)
        else:
            assert applied == {} and cuda_flags() == before
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = before


def test_a_trainer_pins_its_batches_for_cuda_only(device):
    # Pinned (page-locked) host memory lets the copy with non_blocking=True overlap the GPU's work.
    before = cuda_flags()
    try:
        trainer = Trainer(tiny_config("train.steps=1", f"train.device={device!r}"))
        batch = trainer.state.loader.next_batch()
        assert batch.is_pinned() == (trainer.device.type == "cuda")
        assert trainer.device_settings == ({"tf32": True, "cudnn_benchmark": True} if device.startswith("cuda") else {})
        if trainer.device.type != "cuda":
            assert cuda_flags() == before
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = before
