"""Where and how tensors run: device choice, mixed precision, CUDA kernel settings, the allocator."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
# The dtype each reduced precision autocasts to; fp32 runs without autocast.
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


# A CPU torch.Generator reads only a seed's low 32 bits: seeds S and S + 2^32 would draw the same noise.
SEED_MAX = 2**32 - 1


def check_seed(key: str, seed: int) -> None:
    """A one-line error naming `key` unless seed is an integer from 0 to SEED_MAX."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ValueError(f"{key} must be an integer from 0 to {SEED_MAX}, got {seed!r}")


def pick_device(name: str = "auto") -> torch.device:
    """cuda, then mps, then cpu for 'auto'; a named device must be available."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)} or cuda:N")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was asked for but MPS is not available")
    return torch.device(name)


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 matmuls run natively here (CUDA Ampere+, ROCm, or a CPU with AVX-512 BF16 / AMX)."""
    if device.type == "cuda":
        # Not torch.cuda.is_bf16_supported(): it also says yes on a T4 or V100, which only emulate bf16.
        return bool(torch.version.hip) or torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()) or bool(
            getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
        )
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' becomes 'bf16' where bf16 is fast, else 'fp16' on CUDA (T4, V100: fp16 tensor cores), else 'fp32'.

    On those GPUs fp16 runs on tensor cores, but its 5 exponent bits let small gradients underflow, so
    training in it needs a gradient scaler (TrainState.scaler). A CPU without fast bf16 has no fast fp16.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if bf16_is_fast(device):
            return "bf16"
        return "fp16" if device.type == "cuda" else "fp32"
    return precision


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """bf16 or fp16 autocast (weights and optimizer stay float32), nothing for 'fp32'."""
    if precision in AUTOCAST_DTYPES:
        with torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision]):
            yield
    else:
        yield


def setup_device(device: torch.device, tf32: bool = True, cudnn_benchmark: bool = True) -> dict[str, bool]:
    """Apply the process-wide CUDA kernel settings (train.tf32, train.cudnn_benchmark); returns what was set.

    tf32: float32 matmuls and convolutions on Ampere and newer run on tensor cores with a 10-bit
    mantissa (what fp32 training on GPUs does in practice; PyTorch leaves it off for matmuls).
    cudnn_benchmark: cuDNN times its convolution algorithms for each new input shape and keeps the
    fastest (a training run has one shape). Both are the field's defaults on GPUs, not measured here
    yet; neither touches a CPU or MPS run, so there nothing is set and {} is returned.
    """
    if device.type != "cuda":
        return {}
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = cudnn_benchmark
    return {"tf32": tf32, "cudnn_benchmark": cudnn_benchmark}


def keep_memory_mapped() -> bool:
    """Stop glibc from returning large activation buffers to the OS after every step.

    Each training step frees and re-allocates the same tens of MB; by default glibc unmaps them and
    the next step pays page faults to map them again (measured: seconds of system time in a few
    steps on 2 cores). Raised thresholds are not enough: a block above the mmap threshold (at
    most 32 MB, one 64x64 feature map at batch 64) that the heap cannot serve is mapped afresh, and a
    heap top above the trim threshold (at most 2 GB through mallopt) is given back. So mmap is turned
    off and trimming too: freed memory stays in the heap for the next step (64x64 training: +20-50%).
    Does nothing where MALLOC_MMAP_MAX_ or MALLOC_MMAP_THRESHOLD_ is set; returns whether it applied.
    """
    if not sys.platform.startswith("linux") or {"MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_"} & set(os.environ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_top_pad, m_mmap_max = -1, -2, -4
    ok = libc.mallopt(m_mmap_max, 0) == 1
    ok &= libc.mallopt(m_trim_threshold, -1) == 1  # -1: never trim (mallopt(3))
    ok &= libc.mallopt(m_top_pad, 2**30) == 1
    return ok
