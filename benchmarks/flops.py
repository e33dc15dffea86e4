"""FLOP counting with torch.utils.flop_counter.FlopCounterMode, the same way for every model.

FlopCounterMode knows the CUDA attention kernels but not PyTorch's CPU flash-attention ops, whose
arguments have the same layout; they are registered here with PyTorch's own SDPA formulas, so
attention counts on the CPU too (for every model alike).
"""

from __future__ import annotations

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula

aten = torch.ops.aten
_registered = False


def _register_cpu_attention() -> None:
    global _registered
    if _registered:
        return

    @register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu)
    def _forward(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)

    @register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu_backward)
    def _backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)

    _registered = True


def count_flops(fn, inference: bool = False) -> int:
    """Total FLOPs of one call of fn (forward and backward if fn does both)."""
    _register_cpu_attention()
    counter = FlopCounterMode(display=False)
    context = torch.inference_mode() if inference else torch.enable_grad()
    with counter, context:
        fn()
    return counter.get_total_flops()
