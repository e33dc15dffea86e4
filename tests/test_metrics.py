import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from horseshoe.data.horseshoes import render
from horseshoe.diffusion import Denoiser, make_schedule
from horseshoe.metrics import fid
from horseshoe.metrics.inception import FIDInception, find_weights, load_inception
from horseshoe.metrics.likelihood import (
    denoising_losses,
    discretized_gaussian_log_likelihood,
    normal_kl,
    variational_bound,
)
from horseshoe.metrics.novelty import NEAR_COPY_RATIO, novelty
from horseshoe.metrics.swd import laplacian_pyramid, sliced_wasserstein, swd


def shoes(n, seed=0, size=32, style="silhouette"):
    images = torch.from_numpy(render(seed, range(n), size, style)).permute(0, 3, 1, 2).double()
    return images / 127.5 - 1


def blur(x, sigma):
    radius = 3
    k = torch.exp(-torch.arange(-radius, radius + 1, dtype=torch.float64) ** 2 / (2 * sigma**2))
    k = (k[:, None] * k[None, :]) / k.sum() ** 2
    c = x.shape[1]
    return F.conv2d(F.pad(x, (radius,) * 4, mode="reflect"), k.expand(c, 1, -1, -1), groups=c)


# ---- sliced Wasserstein distance ---------------------------------------------------------------

def binomial_up(x):
    """cv2.pyrUp written out: zeros between the pixels, then the 5x5 binomial filter times 4, reflect-padded."""
    up = torch.zeros(*x.shape[:2], 2 * x.shape[2], 2 * x.shape[3], dtype=x.dtype)
    up[..., ::2, ::2] = x
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=x.dtype)
    k = 4 * (k[:, None] * k[None, :]) / 256
    return F.conv2d(F.pad(up, (2, 2, 2, 2), mode="reflect"), k.expand(x.shape[1], 1, 5, 5), groups=x.shape[1])


def test_laplacian_pyramid_reconstructs_and_stops_at_16():
    x = shoes(2, size=64)
    levels = laplacian_pyramid(x)
    assert [lvl.shape[-1] for lvl in levels] == [64, 32, 16]
    assert [lvl.shape[-1] for lvl in laplacian_pyramid(shoes(2))] == [32, 16]
    # Collapsing the pyramid (upsample the coarser image, add the finer level's detail) gives the images back.
    image = levels[-1]
    for detail in reversed(levels[:-1]):
        image = detail + binomial_up(image)
    torch.testing.assert_close(image, x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("style", ["silhouette", "rendered"])  # 1 and 3 channels
def test_swd_is_near_zero_against_itself_and_grows_with_blur(style):
    reference, same = shoes(64, 0, style=style), shoes(64, 0, style=style)
    other_real = shoes(64, 1, style=style)
    base = swd(same, reference).mean
    real = swd(other_real, reference).mean
    blurred = [swd(blur(other_real, s), reference).mean for s in (0.6, 1.0, 1.6, 2.5)]
    assert base == 0.0  # the same images, patches and directions
    assert real < blurred[0] and all(a < b for a, b in zip(blurred, blurred[1:], strict=False))


def test_swd_grows_monotonically_with_a_brightness_shift():
    reference, other = shoes(64, 0), shoes(64, 1)
    values = [swd((other + shift).clamp(-1, 1), reference).mean for shift in (0.0, 0.1, 0.2, 0.4)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False)), values


def test_swd_reports_levels_and_works_for_tiny_sets():
    result = swd(shoes(4, 1), shoes(4, 0), seed=3)
    assert set(result.levels) == {"32x32", "16x16"} and result.samples == 4 and result.seed == 3


def test_sliced_wasserstein_of_a_shifted_set_matches_the_closed_form():
    # Shifting a set by a vector s shifts its projection on a unit direction u by s.u, so the 1-D
    # distance there is |s.u|; over directions uniform on the sphere in d dimensions its mean is
    # |s| E|u_1| = |s| Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)).
    rng = np.random.default_rng(0)
    d = 49
    a = torch.from_numpy(rng.standard_normal((300, d)))
    shift = torch.from_numpy(rng.standard_normal(d))
    expected = float(shift.norm()) * math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)
    found = sliced_wasserstein(a + shift, a, 4096, np.random.default_rng(1))
    assert found == pytest.approx(expected, rel=0.05)  # 4096 directions: ~1% sampling error


# ---- novelty -----------------------------------------------------------------------------------

def test_nearest_neighbour_finds_planted_copies_also_flipped():
    training = shoes(200, 0).float()
    fresh = shoes(6, 1).float()
    planted = torch.cat([training[17:18], training[42:43].flip(-1), training[99:100] + 0.01])
    samples = torch.cat([fresh, planted])
    result = novelty(samples, training, hflip=True)
    assert list(result.neighbours[-3:]) == [17, 42, 99]
    assert (result.ratios[-3:] < NEAR_COPY_RATIO).all()
    assert (result.ratios[:6] > NEAR_COPY_RATIO).all()
    assert result.near_copy_fraction == pytest.approx(3 / 9)
    # Without flips in the comparison, the mirrored copy is no longer an exact match.
    assert novelty(samples, training, hflip=False).ratios[-2] > result.ratios[-2]


# ---- Fréchet distance and KID ------------------------------------------------------------------

def test_frechet_distance_closed_forms():
    mu1, mu2 = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 2.0, 5.0])
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 1.0])
    # Diagonal covariances: |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
    expected = 5.0 + ((a.sqrt() - b.sqrt()) ** 2).sum().item()
    assert fid.frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(expected, rel=1e-10)
    # Commuting covariances (same eigenvectors) give the same formula.
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    s1, s2 = q @ torch.diag(a).double() @ q.T, q @ torch.diag(b).double() @ q.T
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    # Non-commuting 2x2: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for a PSD 2x2 M ~ S1 S2.
    s1 = torch.tensor([[2.0, 0.7], [0.7, 1.0]], dtype=torch.float64)
    s2 = torch.tensor([[1.0, -0.3], [-0.3, 3.0]], dtype=torch.float64)
    m = s1 @ s2
    tr_sqrt = math.sqrt(torch.trace(m).item() + 2 * math.sqrt(torch.det(m).item()))
    expected = torch.trace(s1 + s2).item() - 2 * tr_sqrt
    assert fid.frechet_distance(torch.zeros(2), s1, torch.zeros(2), s2) == pytest.approx(expected, rel=1e-10)
    assert fid.frechet_distance(mu1, s1 := torch.eye(3), mu1, s1) == pytest.approx(0.0, abs=1e-12)


def test_fid_from_samples_approaches_the_gaussian_value():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(20000, 4, generator=g, dtype=torch.float64)
    b = 2.0 * torch.randn(20000, 4, generator=g, dtype=torch.float64) + 1.0
    # N(0, I) vs N(1, 4I) in 4-D: 4 * 1^2 + 4 * (1 - 2)^2 = 8.
    assert fid.fid_from_features(a, b) == pytest.approx(8.0, rel=0.03)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(400, 8, generator=g), torch.randn(400, 8, generator=g)
    same, _ = fid.kid_from_features(a, b, subsets=20, subset_size=200)
    shifted, _ = fid.kid_from_features(a, b + 0.5, subsets=20, subset_size=200)
    assert abs(same) < 0.05 * shifted and shifted > 0


def test_inception_pipeline_with_random_weights(tmp_path):
    # The real weights are not downloadable here; a randomly initialised network of the same
    # architecture checks the plumbing: file loading (.pth via weights_only, and .safetensors),
    # feature shapes, FID ~0 for a set against itself and > 0 against a blurred copy.
    torch.manual_seed(0)
    net = FIDInception()
    for m in net.modules():  # random but non-degenerate batch-norm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
            m.running_mean.normal_(0, 0.1)
    pth = tmp_path / "random_inception.pth"
    torch.save({k: v for k, v in net.state_dict().items() if "num_batches" not in k}, pth)
    model = load_inception(pth)
    from safetensors.torch import save_file

    st = tmp_path / "random_inception.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(st))
    assert torch.equal(load_inception(st).Mixed_7c.branch_pool.conv.weight, model.Mixed_7c.branch_pool.conv.weight)
    images = shoes(12, 0).float()
    features = fid.inception_features(model, images, batch_size=6)
    assert features.shape == (12, 2048) and torch.isfinite(features).all()
    again = fid.inception_features(model, images, batch_size=12)
    torch.testing.assert_close(features, again, rtol=1e-4, atol=1e-4)
    blurred = fid.inception_features(model, blur(images.double(), 2.0).float())
    assert fid.fid_from_features(features, again) < 1e-3 * fid.fid_from_features(features, blurred)


def test_weights_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="Inception weights file '.*nope.pth' does not exist"):
        find_weights(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"something": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="is not the FID Inception weight file"):
        load_inception(bad)


# ---- variational bound -------------------------------------------------------------------------

def test_bits_per_dim_of_a_perfect_eps_model_matches_the_analytic_value():
    # One-point data x0 = c: eps = (x_t - sqrt(abar) c) / sqrt(1 - abar) is exactly right, so every
    # KL term L_t vanishes and the bound is the prior KL plus the decoder's bin mass, both closed forms.
    schedule = make_schedule("cosine", 100)
    c = 51 / 127.5 - 1  # an interior 8-bit level
    x0 = torch.full((3, 1, 4, 4), c, dtype=torch.float64)

    def perfect(x, t):
        abar = schedule.alpha_bars[t].view(-1, 1, 1, 1).to(x.dtype)
        return (x - abar.sqrt() * c) / (1 - abar).sqrt()

    result = variational_bound(Denoiser(perfect, schedule, "eps"), x0, timesteps=99)
    abar_T = schedule.alpha_bars[-1].item()
    prior = 0.5 * (-1 - math.log(1 - abar_T) + (1 - abar_T) + abar_T * c * c)
    beta_tilde_1 = (1 - schedule.alpha_bars[0].item()) / (1 - schedule.alpha_bars[1].item()) * schedule.betas[1].item()
    decoder = -math.log(math.erf(1 / 255 / math.sqrt(2 * beta_tilde_1)))  # 2 Phi(1/(255 s)) - 1
    assert result.terms_bpd == pytest.approx(0.0, abs=1e-6)
    assert result.prior_bpd == pytest.approx(prior / math.log(2), rel=1e-9)
    assert result.decoder_bpd == pytest.approx(decoder / math.log(2), rel=1e-6)
    assert result.bits_per_dim == pytest.approx((prior + decoder) / math.log(2), rel=1e-6)
    # The stratified estimate is exact here too (every term is zero).
    assert variational_bound(Denoiser(perfect, schedule, "eps"), x0, timesteps=7).bits_per_dim == \
        pytest.approx(result.bits_per_dim, rel=1e-6)


def test_denoising_losses_of_a_model_off_by_a_constant_match_the_closed_form():
    # One-point data x0 = c and a model that believes c + o: x0_hat = c + o at every t, so x0_mse = o^2,
    # and eps_hat - eps = -sqrt(abar_t / (1 - abar_t)) o, so eps_mse = o^2 abar_t / (1 - abar_t).
    schedule, c, o = make_schedule("cosine", 50), 0.2, 0.1
    x0 = torch.full((2, 1, 4, 4), c, dtype=torch.float64)

    def believes(x, t):
        abar = schedule.alpha_bars[t].view(-1, 1, 1, 1).to(x.dtype)
        return (x - abar.sqrt() * (c + o)) / (1 - abar).sqrt()

    found = denoising_losses(Denoiser(believes, schedule, "eps"), x0, fractions=(0.1, 0.5, 0.9)).losses
    assert [loss.t for loss in found] == [5, 25, 45]
    for loss in found:
        abar = schedule.alpha_bars[loss.t].item()
        assert loss.x0_mse == pytest.approx(o * o, rel=1e-9)
        assert loss.eps_mse == pytest.approx(o * o * abar / (1 - abar), rel=1e-9)


def test_bound_grows_when_the_model_is_wrong():
    schedule = make_schedule("cosine", 50)
    x0 = torch.full((2, 1, 4, 4), 0.2, dtype=torch.float64)

    def model(offset):
        def f(x, t):
            abar = schedule.alpha_bars[t].view(-1, 1, 1, 1).to(x.dtype)
            return (x - abar.sqrt() * (0.2 + offset)) / (1 - abar).sqrt()
        return f

    good = variational_bound(Denoiser(model(0.0), schedule, "eps"), x0, timesteps=49).bits_per_dim
    bad = variational_bound(Denoiser(model(0.1), schedule, "eps"), x0, timesteps=49).bits_per_dim
    assert bad > good + 0.5


def test_kl_and_discretized_likelihood_formulas():
    assert normal_kl(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(0.0), torch.tensor(1.0)).item() == 0.0
    kl = normal_kl(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(0.0), torch.tensor(1.0)).item()
    assert kl == pytest.approx(0.5 * (math.log(0.5) + 3 - 1))
    # The 256 bins' probabilities sum to one.
    levels = torch.arange(256, dtype=torch.float64) / 127.5 - 1
    p = discretized_gaussian_log_likelihood(levels, torch.full_like(levels, 0.3), torch.tensor(0.2)).exp()
    assert p.sum().item() == pytest.approx(1.0, abs=1e-9)
