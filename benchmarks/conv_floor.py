"""The time a network's convolutions take on their own: a floor under its step time.

Both U-Nets spend most of a step in the same oneDNN convolutions. Replaying exactly the convolutions
one forward pass makes (same shapes, strides, padding, bf16), alone and one at a time, measures how
fast a step could be if everything else (normalisation, attention, elementwise work, the optimizer)
took no time. That bounds the speed-up over a peer that any change outside the convolutions can give.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ConvCall:
    input_shape: tuple[int, ...]
    weight_shape: tuple[int, ...]
    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int
    bias: bool
    input_grad: bool  # False for the noisy image the network starts from

    def flops(self) -> int:
        """2 x the multiply-adds of the forward convolution, as torch.utils.flop_counter counts them."""
        out_ch, in_per_group, kh, kw = self.weight_shape
        batch, _, h, w = self.input_shape
        h_out = (h + 2 * self.padding[0] - kh) // self.stride[0] + 1
        w_out = (w + 2 * self.padding[1] - kw) // self.stride[1] + 1
        return 2 * batch * out_ch * in_per_group * kh * kw * h_out * w_out


def conv_calls(model: nn.Module, forward, *inputs) -> list[ConvCall]:
    """Every nn.Conv2d call one forward pass of `forward(*inputs)` makes, in order (the pass runs with
    gradients on, so that each call knows whether its input needs one)."""
    calls = []

    def record(module, args, output):
        calls.append(ConvCall(tuple(args[0].shape), tuple(module.weight.shape), module.stride, module.padding,
                              module.groups, module.bias is not None, args[0].requires_grad))

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.enable_grad():
            forward(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def replay(call: ConvCall, train: bool, memory_format: torch.memory_format, device: torch.device):
    """A function that runs `call` alone in bf16: forward, or forward and backward (input gradient
    where the network needs one, weight and bias gradients) when `train`."""
    x = torch.randn(call.input_shape, device=device, dtype=torch.bfloat16).to(memory_format=memory_format)
    weight = torch.randn(call.weight_shape, device=device, dtype=torch.bfloat16).to(memory_format=memory_format)
    bias = torch.randn(call.weight_shape[0], device=device, dtype=torch.bfloat16) if call.bias else None
    if train:
        x.requires_grad_(call.input_grad)
        weight.requires_grad_()
        if bias is not None:
            bias.requires_grad_()

    def run() -> None:
        with torch.set_grad_enabled(train):
            y = F.conv2d(x, weight, bias, call.stride, call.padding, 1, call.groups)
            if train:
                y.backward(torch.ones_like(y))

    return run
