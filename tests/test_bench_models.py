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
