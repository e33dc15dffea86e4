"""FID and KID from Inception features (Heusel et al. 2017; Binkowski et al. 2018).

FID is the Fréchet distance between Gaussians fitted to the two feature sets:
    d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))
The trace of the matrix square root is taken as the sum of square roots of the eigenvalues of
S1^(1/2) S2 S1^(1/2), which is symmetric and positive semi-definite, in float64.
KID is the unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over
random subsets. fid_kid measures both with the FID Inception network (metrics.inception), or says why not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from horseshoe.metrics.inception import WEIGHTS_URL, FIDInception, load_inception

FID_NOTE = (f"FID/KID skipped: no Inception weights. Download {WEIGHTS_URL} and pass "
            f"--inception-weights PATH (or put it in ~/.cache/torch/hub/checkpoints/)")


def _sym_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2, sigma1, sigma2 = (v.double() for v in (mu1, mu2, sigma1, sigma2))
    root1 = _sym_sqrt(sigma1)
    cross = torch.linalg.eigvalsh(root1 @ sigma2 @ root1).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).pow(2).sum() + torch.trace(sigma1) + torch.trace(sigma2) - 2 * cross)


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) covariance of (N, D) features."""
    f = features.double()
    return f.mean(0), torch.cov(f.T)


def fid_from_features(a: torch.Tensor, b: torch.Tensor) -> float:
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def kid_from_features(a: torch.Tensor, b: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0) -> tuple[float, float]:
    """KID (mean, std over subsets) with the cubic polynomial kernel; subset size capped by the set sizes."""
    rng = np.random.default_rng(seed)
    a, b = a.double(), b.double()
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise ValueError("KID needs at least 2 images in each set")
    d = a.shape[1]
    values = []
    for _ in range(subsets):
        x = a[torch.from_numpy(rng.choice(a.shape[0], m, replace=False))]
        y = b[torch.from_numpy(rng.choice(b.shape[0], m, replace=False))]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        off = ~torch.eye(m, dtype=torch.bool)
        values.append(float(kxx[off].mean() + kyy[off].mean() - 2 * kxy.mean()))
    return float(np.mean(values)), float(np.std(values))


@torch.no_grad()
def inception_features(model: FIDInception, images: torch.Tensor, batch_size: int = 50) -> torch.Tensor:
    """(N, 2048) features of float images (N, C, H, W) in [-1, 1]."""
    device = next(model.parameters()).device
    return torch.cat([model(images[i:i + batch_size].float().to(device)).cpu()
                      for i in range(0, images.shape[0], batch_size)])


@dataclass(frozen=True)
class FIDResult:
    """FID and KID against the reference, or the note saying why they were skipped."""

    fid: float | None = None
    kid: float | None = None
    kid_std: float | None = None
    weights: str | None = None
    skipped: str | None = None

    def to_json(self) -> dict:
        if self.skipped:
            return {"skipped": self.skipped}
        return {"fid": self.fid, "kid": self.kid, "kid_std": self.kid_std, "weights": self.weights}

    def line(self) -> str:
        return self.skipped or f"FID {self.fid:.2f}, KID {self.kid:.4f} +- {self.kid_std:.4f}"


def fid_kid(weights_path: Path | None, samples: torch.Tensor, reference: torch.Tensor, device: torch.device,
            seed: int) -> FIDResult:
    """FID and KID with the FID Inception network, or a note when its weights are not there."""
    if weights_path is None:
        return FIDResult(skipped=FID_NOTE)
    model = load_inception(weights_path).to(device)
    a, b = inception_features(model, samples), inception_features(model, reference)
    kid_mean, kid_std = kid_from_features(a, b, seed=seed)
    return FIDResult(fid=fid_from_features(a, b), kid=kid_mean, kid_std=kid_std, weights=str(weights_path))
