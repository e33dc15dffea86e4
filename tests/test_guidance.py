"""Classifier-free guidance in the denoiser, and the class embedding of the U-Net."""

import pytest
import torch
from oracles import class_gaussian_network, plain

from horseshoe.diffusion import NO_CLASS, Denoiser, make_schedule
from horseshoe.models import NO_CLASS as MODEL_NO_CLASS
from horseshoe.models import UNet, UNetConfig
from horseshoe.sampling import DIFFUSION_SAMPLERS, generate, initial_noise, sample

TINY = UNetConfig(base_channels=16, channel_mults=(1, 2), num_res_blocks=1, norm_groups=8, patch_size=1)


def tiny_unet(num_classes, seed=0, trained=True, **options):
    """A tiny U-Net; `trained`: its zero-initialised layers (output, residual branches) made random, as
    training makes them, so that the time and class embeddings change the output. The class rows keep
    their start (zero with class_embed_std=0)."""
    torch.manual_seed(seed)
    model = UNet(UNetConfig(**{**TINY.__dict__, "num_classes": num_classes, **options}), (1, 8, 8)).eval()
    if trained:
        generator = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if not p.any() and name != "class_embed.weight":
                    p.copy_(0.1 * torch.randn(p.shape, generator=generator))
    return model


class Counting:
    """A network that counts its calls and the batch sizes it sees."""

    def __init__(self, network):
        self.network, self.batches = network, []

    def __call__(self, x, t, labels=None):
        self.batches.append(x.shape[0])
        return self.network(x, t) if labels is None else self.network(x, t, labels)


def test_no_class_is_one_label_in_both_layers():
    assert NO_CLASS == MODEL_NO_CLASS == -1


def test_class_embedding_changes_the_output_and_no_class_is_the_default():
    model = tiny_unet(3)
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([10, 200, 500, 900])
    outputs = [model(x, t, torch.full((4,), c)) for c in range(3)]
    for i in range(3):
        for j in range(i):
            assert (outputs[i] - outputs[j]).abs().max() > 1e-3
    assert torch.equal(model(x, t), model(x, t, torch.full((4,), NO_CLASS)))
    assert not torch.equal(model(x, t), outputs[0])


def test_class_embedding_leaves_the_other_weights_as_an_unconditional_network_of_the_same_seed():
    conditional, plain_net = tiny_unet(3, trained=False), tiny_unet(0, trained=False)
    own = plain_net.state_dict()
    assert set(conditional.state_dict()) - set(own) == {"class_embed.weight"}
    assert all(torch.equal(v, own[k]) for k, v in conditional.state_dict().items() if k in own)
    assert conditional.class_embed.weight.shape == (4, 64)  # three classes and "no class"


def test_class_embed_std_scales_the_same_draw_and_zero_starts_every_class_as_no_class():
    unit, half, zero = (tiny_unet(3, trained=False, class_embed_std=std) for std in (1.0, 0.5, 0.0))
    assert unit.class_embed.weight.std() > 0.5
    assert torch.equal(half.class_embed.weight, 0.5 * unit.class_embed.weight)
    assert not zero.class_embed.weight.any()
    others = {k: v for k, v in unit.state_dict().items() if k != "class_embed.weight"}
    assert all(torch.equal(v, zero.state_dict()[k]) for k, v in others.items())
    trained = tiny_unet(3, class_embed_std=0.0)  # the other layers made random, the class rows still zero
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([10, 200, 500, 900])
    assert torch.equal(trained(x, t, torch.full((4,), 2)), trained(x, t))
    assert not torch.equal(trained(x, t), zero(x, t))  # the random layers are in: the equality is not vacuous
    with pytest.raises(ValueError, match="model.class_embed_std must be >= 0, got -1"):
        UNetConfig(class_embed_std=-1.0)


def test_labels_on_a_network_without_classes_are_an_error():
    with pytest.raises(ValueError, match="this network has no classes"):
        tiny_unet(0)(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"expected integer labels of shape \(2,\)"):
        tiny_unet(2)(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), torch.tensor([0.0, 1.0]))


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_guidance_zero_and_one_are_exactly_the_two_predictions(prediction):
    model, schedule = tiny_unet(3), make_schedule("cosine", 1000)
    x, labels = torch.randn(5, 1, 8, 8), torch.tensor([0, 1, 2, 1, 0])
    with torch.no_grad():
        unguided = Denoiser(model, schedule, prediction)(x, 400)
        conditional = Denoiser(lambda x, t: model(x, t, labels), schedule, prediction)(x, 400)
        counting = Counting(model)
        at_zero = Denoiser(counting, schedule, prediction).conditioned(labels, 0.0)(x, 400)
        at_one = Denoiser(counting, schedule, prediction).conditioned(labels, 1.0)(x, 400)
    assert torch.equal(at_zero.eps, unguided.eps) and torch.equal(at_zero.x0, unguided.x0)
    assert torch.equal(at_one.eps, conditional.eps) and torch.equal(at_one.x0, conditional.x0)
    assert counting.batches == [5, 5]  # one call each, no unused half
    assert (conditional.eps - unguided.eps).abs().max() > 1e-3  # the two differ: the test can fail


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_guidance_mixes_eps_in_one_batched_call(prediction):
    # Ho & Salimans Eq. 6: eps~ = eps_u + w (eps_c - eps_u), for any parameterisation of the output.
    model, schedule = tiny_unet(3), make_schedule("cosine", 1000)
    x, labels, w = torch.randn(5, 1, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 1, 0]), 2.5
    model = model.double()
    with torch.no_grad():
        uncond = Denoiser(model, schedule, prediction)(x, 300)
        cond = Denoiser(lambda x, t: model(x, t, labels), schedule, prediction)(x, 300)
        counting = Counting(model)
        guided = Denoiser(counting, schedule, prediction).conditioned(labels, w)(x, 300)
    assert counting.batches == [10]
    torch.testing.assert_close(guided.eps, uncond.eps + w * (cond.eps - uncond.eps), rtol=0, atol=1e-10)
    torch.testing.assert_close(guided.x0, uncond.x0 + w * (cond.x0 - uncond.x0), rtol=0, atol=1e-10)


def test_guidance_interval_guides_only_between_its_noise_levels():
    model, schedule = tiny_unet(2), make_schedule("cosine", 1000)
    x, labels = torch.randn(3, 1, 8, 8), torch.tensor([0, 1, 1])
    sigma = ((1 - schedule.alpha_bars) / schedule.alpha_bars).sqrt()
    inside, outside = 500, 100
    interval = (float(sigma[300]), float(sigma[700]))
    with torch.no_grad():
        plain_cond = Denoiser(lambda x, t: model(x, t, labels), schedule, "v")
        always = Denoiser(model, schedule, "v").conditioned(labels, 3.0)
        between = Denoiser(model, schedule, "v").conditioned(labels, 3.0, interval)
        assert torch.equal(between(x, outside).eps, plain_cond(x, outside).eps)  # w = 1 outside
        assert torch.equal(between(x, inside).eps, always(x, inside).eps)
        # A tensor of timesteps, one inside and two outside the interval, row by row the same.
        t = torch.tensor([inside, outside, 900])
        rows = between(x, t).eps
        torch.testing.assert_close(rows[0], always(x, inside).eps[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(rows[1], plain_cond(x, outside).eps[1], rtol=0, atol=1e-5)
        torch.testing.assert_close(rows[2], plain_cond(x, 900).eps[2], rtol=0, atol=1e-5)


def test_guidance_rejects_negative_scales_and_bad_intervals():
    with pytest.raises(ValueError, match="guidance scale must be a number >= 0, got -1"):
        Denoiser(lambda x, t: x, make_schedule("cosine", 10)).conditioned(torch.tensor([0]), -1.0)
    with pytest.raises(ValueError, match="guidance interval"):
        Denoiser(lambda x, t: x, make_schedule("cosine", 10)).conditioned(torch.tensor([0]), 2.0, (3.0, 1.0))


MUS, SIGMAS = [-0.6, 0.5], [0.3, 0.2]


@pytest.mark.parametrize("name", DIFFUSION_SAMPLERS)  # the consistency sampler: tests/test_distill.py
def test_per_class_gaussian_oracle_with_guidance_one_reproduces_each_class(name):
    # Two classes, N(-0.6, 0.3^2) and N(0.5, 0.2^2); at w = 1 the denoiser is the exact conditional
    # predictor, so each class's samples must have its mean and spread. Tolerance as in
    # test_samplers: 5 standard errors plus the 1000-step discretisation error (< 6e-3).
    schedule = make_schedule("linear", 1000)
    denoiser = Denoiser(class_gaussian_network(schedule, MUS, SIGMAS), schedule, "eps")
    n = 3000  # per class: 5 standard errors are 0.027 (mean) and 0.019 (std) for class 0
    g = torch.Generator().manual_seed(3)
    x_T = initial_noise((2 * n, 1, 1, 1), g, torch.float64)
    labels = torch.arange(2).repeat_interleave(n)
    out = sample(denoiser.conditioned(labels, 1.0), x_T, plain(name), g)
    for c in range(2):
        mine = out[labels == c]
        assert mine.mean().item() == pytest.approx(MUS[c], abs=5 * SIGMAS[c] / n**0.5 + 6e-3)
        assert mine.std().item() == pytest.approx(SIGMAS[c], abs=5 * SIGMAS[c] / (2 * n) ** 0.5 + 6e-3)


def test_per_class_gaussian_oracle_at_guidance_zero_draws_the_mixture():
    # Asked for class 0 at w = 0, only the "no class" half is read: the mixture of both classes, mean
    # (mu_0 + mu_1)/2 = -0.05, std sqrt(mean(s_c^2) + var(mu_c)) = sqrt(0.065 + 0.3025), and
    # P(x > 0) = (P(N(-0.6, 0.3^2) > 0) + P(N(0.5, 0.2^2) > 0)) / 2 = (0.0228 + 0.9938) / 2.
    schedule = make_schedule("linear", 1000)
    denoiser = Denoiser(class_gaussian_network(schedule, MUS, SIGMAS), schedule, "eps")
    n = 6000
    g = torch.Generator().manual_seed(4)
    x_T = initial_noise((n, 1, 1, 1), g, torch.float64)
    out = sample(denoiser.conditioned(torch.zeros(n, dtype=torch.int64), 0.0), x_T, plain("ddim"), g)
    assert out.mean().item() == pytest.approx(-0.05, abs=5 * 0.61 / n**0.5 + 6e-3)
    assert out.std().item() == pytest.approx(0.3675**0.5, abs=0.03)
    assert (out > 0).double().mean().item() == pytest.approx(0.5083, abs=5 * 0.5 / n**0.5)


def test_generate_rejects_labels_of_the_wrong_length():
    schedule = make_schedule("linear", 10)
    denoiser = Denoiser(class_gaussian_network(schedule, MUS, SIGMAS), schedule, "eps")
    with pytest.raises(ValueError, match=r"expected 4 labels, got shape \(3,\)"):
        generate(denoiser, 4, (1, 1, 1), plain("ddim"), labels=torch.zeros(3, dtype=torch.int64))
