"""The benchmark compares like with like: the matched networks do the same work."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
pytest.importorskip("diffusers")

from flops import count_flops  # noqa: E402
from models import diffusers_unet, ours  # noqa: E402


@pytest.mark.parametrize("size", [32, 64])
def test_matched_networks_do_the_same_flops(size):
    x, t = torch.randn(2, 3, size, size), torch.tensor([3, 700])
    counts = {}
    for build in (ours, diffusers_unet):
        built = build(size)
        counts[built.name] = count_flops(lambda built=built: built.forward(x, t), inference=True)
        assert built.forward(x, t).shape == x.shape
    # Same convolutions, attention (one head at the same resolution) and projections: FLOPs agree to 1%.
    assert counts["horseshoe"] == pytest.approx(counts["diffusers"], rel=0.01)


def test_cpu_attention_is_counted():
    q = torch.randn(2, 1, 64, 32)
    flops = count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q), inference=True)
    assert flops == 2 * (2 * 2 * 64 * 64 * 32)  # q @ k^T and p @ v, 2 FLOPs per multiply-add


def test_live_tensor_bytes_counts_storages_until_their_last_view_dies():
    from tensor_memory import LiveTensorBytes

    outside = torch.ones(1000)  # made before the mode: not counted
    with LiveTensorBytes() as mode:
        a = outside * 2                      # 4000 bytes
        view = a[:10]                        # a view: no new storage
        b = torch.zeros(500, dtype=torch.float64)  # 4000 bytes: 8000 alive
        del a                                # the view keeps a's storage alive
        c = torch.zeros(250)                 # 1000 bytes: 9000 alive, the peak
        del view, b                          # both storages freed: 1000 alive
        d = torch.zeros(1500)                # 6000 bytes: 7000 alive, below the peak
    assert (mode.peak, mode.live) == (9000, 7000)
    del c, d
