import pytest
import torch
from torch import nn

from horseshoe.diffusion import make_schedule, q_sample
from horseshoe.models import UNet, UNetConfig
from horseshoe.models.layers import CPU_MATMUL_ATTENTION_MAX_LEN, attention, timestep_embedding


def tiny(channels=3, size=(16, 16), **overrides):
    fields = dict(base_channels=16, channel_mults=(1, 2, 2), num_res_blocks=1, attention_resolutions=(8,),
                  norm_groups=8, head_channels=16, patch_size=1)
    fields.update(overrides)
    return UNet(UNetConfig(**fields), (channels, *size))


def randomise(model):
    """Give the zero-initialised layers random weights, so outputs are not trivially zero."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("size", [(8, 8), (16, 16), (32, 32), (16, 40)])
def test_output_shape_equals_input_shape(channels, size):
    model = tiny(channels)
    x = torch.randn(2, channels, *size)
    assert model(x, torch.tensor([0, 999])).shape == x.shape


def test_zero_initialised_output_and_residual_branches():
    model = tiny()
    assert all(not block.conv2.weight.any() for level in model.down for block in level.blocks)
    assert not model.conv_out.weight.any() and not model.conv_out.bias.any()
    x = torch.randn(2, 3, 16, 16)
    assert not model(x, torch.tensor([3, 700])).any()  # the untrained net predicts exactly zero


def test_output_depends_on_t():
    model = randomise(tiny()).eval()
    x = torch.randn(1, 3, 16, 16).expand(2, -1, -1, -1)
    out = model(x, torch.tensor([10, 900]))
    assert (out[0] - out[1]).abs().mean() > 1e-3 * out.abs().mean()


def test_time_embedding_is_sinusoidal():
    t = torch.tensor([0.0, 5.0])
    emb = timestep_embedding(t, 8)
    freqs = torch.exp(-torch.log(torch.tensor(10000.0)) * torch.arange(4) / 4)
    torch.testing.assert_close(emb[1], torch.cat([torch.cos(5 * freqs), torch.sin(5 * freqs)]))
    torch.testing.assert_close(emb[0], torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0]))


def test_channels_last_and_bf16_autocast_agree_with_float32():
    model = randomise(tiny()).eval()
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([5, 500])
    ref = model(x, t)
    out_cl = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last), t)
    torch.testing.assert_close(out_cl, ref, rtol=1e-4, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_bf16 = model(x, t)
    # bf16 keeps 8 bits of mantissa: relative error ~1e-2 over a few layers.
    assert ((out_bf16.float() - ref).norm() / ref.norm()).item() < 5e-2


def test_a_network_cast_to_bf16_runs_without_autocast():
    # Inference with bf16 weights: the float32 time embedding must follow the weights' dtype.
    model = randomise(tiny()).eval()
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([5, 500])
    ref = model(x, t)
    out = model.to(torch.bfloat16)(x.to(torch.bfloat16), t)
    assert out.dtype == torch.bfloat16
    assert ((out.float() - ref).norm() / ref.norm()).item() < 5e-2


def test_overfits_four_images():
    # Four fixed (x_t, t) -> eps pairs: 60 Adam steps must cut the loss at least 10x (they cut it ~1000x).
    torch.manual_seed(0)
    model = tiny(1, base_channels=16, channel_mults=(1, 2), attention_resolutions=())
    schedule = make_schedule("linear", 1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand((4, 1, 8, 8), generator=g) * 2 - 1
    eps = torch.randn(x0.shape, generator=g)
    t = torch.tensor([50, 300, 600, 900])
    x_t = q_sample(schedule, x0, t, eps).float()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(60):
        loss = nn.functional.mse_loss(model(x_t, t), eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10


def test_bad_sizes_and_configs():
    model = tiny()
    with pytest.raises(ValueError, match="image size 10x16 is not divisible by 4"):
        model(torch.randn(1, 3, 10, 16), torch.tensor([1]))
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 3, H, W\), got \(1, 1, 16, 16\)"):
        model(torch.randn(1, 1, 16, 16), torch.tensor([1]))
    with pytest.raises(ValueError, match=r"expected t of shape \(2,\)"):
        model(torch.randn(2, 3, 16, 16), torch.tensor([1]))
    with pytest.raises(ValueError, match="image channels must be 1, 2, 3 or 4, got 5"):
        tiny(5)
    with pytest.raises(ValueError, match="norm_groups=32 does not divide the channel count 48"):
        UNetConfig(base_channels=48, channel_mults=(1,))
    with pytest.raises(ValueError, match=r"attention_resolutions: 3 is not a feature-map size of this U-Net "
                                         r"\(sizes \[16, 8, 4\] for 16x16 images\)"):
        tiny(attention_resolutions=(3,))


@pytest.mark.parametrize("length", [16, 256, CPU_MATMUL_ATTENTION_MAX_LEN + 1])
def test_attention_matches_the_definition_in_bf16(length):
    # Up to CPU_MATMUL_ATTENTION_MAX_LEN positions bf16 takes the two-matmul path, beyond it the
    # fused kernel; both must give softmax(q k^T / sqrt(d)) v, computed here in float64, and its
    # gradients, to bf16 accuracy (8 mantissa bits: ~4e-3 relative per rounding).
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, length, 32, generator=g, dtype=torch.float64) for _ in range(3))
    grad_out = torch.randn(2, 2, length, 32, generator=g, dtype=torch.float64)

    def reference(q, k, v):
        return torch.softmax(q @ k.transpose(-1, -2) / 32**0.5, dim=-1) @ v

    results = []
    for fn, dtype in [(reference, torch.float64), (attention, torch.bfloat16)]:
        inputs = [x.detach().to(dtype).requires_grad_() for x in (q, k, v)]
        out = fn(*inputs)
        out.backward(grad_out.to(dtype))
        results.append([out.double()] + [x.grad.double() for x in inputs])
    for expected, got in zip(*results, strict=True):
        scale = expected.abs().max().item()
        assert (got - expected).abs().max().item() < 0.03 * scale
