"""The peak of live tensor bytes during a piece of work: an exact memory figure, unlike resident memory.

Resident memory (ru_maxrss) moves by up to ±100 MB between identical runs on CPU (the allocator keeps,
returns and reuses pages as it likes), too much to rank two networks that differ by a few percent.
Every tensor an operator creates inside `LiveTensorBytes` is counted from its creation until the last
tensor viewing its storage is freed: activations, the tensors autograd saves, gradients. Parameters,
inputs and optimizer state that exist before the mode starts are not counted.
"""

from __future__ import annotations

import weakref

import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode


class LiveTensorBytes(TorchDispatchMode):
    """`with LiveTensorBytes() as m: work()`, then m.peak: the most bytes alive at once."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._storages: dict[int, list[int]] = {}  # storage address -> [tensors alive on it, its bytes]

    def _release(self, address: int) -> None:
        entry = self._storages[address]
        entry[0] -= 1
        if entry[0] == 0:
            del self._storages[address]
            self.live -= entry[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in pytree.tree_leaves(out):
            if not isinstance(tensor, torch.Tensor) or tensor.is_mkldnn:
                continue  # opaque oneDNN tensors have no storage to count
            storage = tensor.untyped_storage()
            address = storage.data_ptr()
            if address == 0:
                continue
            entry = self._storages.get(address)
            if entry is None:
                self._storages[address] = [1, storage.nbytes()]
                self.live += storage.nbytes()
                self.peak = max(self.peak, self.live)
            else:
                entry[0] += 1
            weakref.finalize(tensor, self._release, address)
        return out
