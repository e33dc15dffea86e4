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


@pytest.mark.parametrize("build", [ours, diffusers_unet])
def test_conv_floor_replays_every_convolution_of_a_forward(build):
    from conv_floor import conv_calls
    from torch.utils.flop_counter import FlopCounterMode

    built = build(32)
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([3, 700])
    calls = conv_calls(built.module, built.forward, x, t)
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            built.forward(x, t)
    conv_flops = counter.get_flop_counts()["Global"][torch.ops.aten.convolution]
    assert len(calls) == sum(isinstance(m, torch.nn.Conv2d) for m in built.module.modules())
    assert sum(c.flops() for c in calls) == conv_flops
    # Only the first convolution sees the noisy image, which needs no gradient.
    assert [c.input_grad for c in calls] == [False] + [True] * (len(calls) - 1)


def test_conv_floor_bounds_the_ratio_by_the_peers_step_over_our_convolutions():
    from report import _conv_floor

    results = [{"task": "train", "model": m, "size": 32, "precision": "bf16", "mode": "eager", "batch": 64,
                "images_per_sec": 64 / step} for m, step in (("horseshoe", 1.0), ("diffusers", 1.2))]
    results += [{"task": "sample", "model": m, "seconds_per_batch": 50 * fwd} for m, fwd in
                (("horseshoe", 0.3), ("diffusers", 0.4))]
    results += [{"task": "convs", "model": m, "size": 32, "conv_train_seconds_contiguous": 0.8,
                 "conv_train_seconds_channels_last": 0.6, "conv_forward_seconds_contiguous": 0.25,
                 "conv_forward_seconds_channels_last": 0.2} for m in ("horseshoe", "diffusers")]
    text = "\n".join(_conv_floor(results))
    assert "| horseshoe | 1.000 | 0.800 (80%) | 0.600 | 0.300 | 0.250 (83%) | 0.200 |" in text
    # 1.2 / 0.8, 1.2 / 0.6, 0.4 / 0.25, 0.4 / 0.2
    assert "at most 1.50x faster" in text and "(2.00x in channels_last)" in text
    assert "sampling at most 1.60x (2.00x)" in text
