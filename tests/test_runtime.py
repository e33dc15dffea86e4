"""The process-wide settings horseshoe makes for speed."""

import os
import subprocess
import sys

import pytest

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
