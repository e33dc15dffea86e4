"""Where and how tensors run: device choice, mixed precision, allocator and thread settings."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "bf16", "fp32")


def check_seed(key: str, seed: int) -> None:
    """A one-line error naming `key` unless seed is an integer torch and numpy both accept, offsets included."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**62:
        raise ValueError(f"{key} must be an integer from 0 to 2^62, got {seed!r}")


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
    """Whether bf16 matmuls run natively here (CUDA Ampere+, or a CPU with AVX-512 BF16 / AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()) or bool(
            getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
        )
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' becomes 'bf16' where bf16 is fast on this device, else 'fp32'."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    return precision


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """bf16 autocast for 'bf16' (weights and optimizer stay float32), nothing for 'fp32'."""
    if precision == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


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
