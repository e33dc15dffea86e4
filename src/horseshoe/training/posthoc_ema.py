"""Post-hoc EMA (Karras et al. 2024, EDM2, Sec. 3.1-3.2): choose the EMA length after training.

Training keeps a few power-function EMAs of the weights and saves them as snapshots along the way;
any other EMA length is then a least-squares mix of the snapshots, reconstructed after training, so
that the length can be picked by how the samples score instead of guessed before training.

A power-function EMA with exponent gamma weighs the weights theta(tau) of the steps tau <= t by
p(tau) = (gamma + 1) tau^gamma / t^(gamma + 1) (EDM2 Eq. 2); step by step it is
ema <- beta ema + (1 - beta) theta with beta = (1 - 1/t)^(gamma + 1) (Eq. 3). Its width relative to
the training so far, sigma_rel = sqrt(gamma + 1) / ((gamma + 2) sqrt(gamma + 3)) (Eq. 4), is the same
at every t: the average grows with the run, where the trainer's EMA is fixed in images.

    RUN/posthoc_ema/step-00000650.safetensors   every profile's parameters at step 650, as "k/name",
                                                with the step and the profiles' sigma_rel in its metadata
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from horseshoe.config import MAX_SIGMA_REL
from horseshoe.training import atomic

SNAPSHOT_DIR = "posthoc_ema"
SNAPSHOT_NAME = re.compile(r"step-(\d{8})\.safetensors")


def sigma_rel_of(gamma: float) -> float:
    """The relative width of the power-function profile with exponent gamma (EDM2 Eq. 4)."""
    return math.sqrt(gamma + 1) / ((gamma + 2) * math.sqrt(gamma + 3))


def gamma_of(sigma_rel: float) -> float:
    """The exponent gamma >= 0 whose profile has relative width sigma_rel: Eq. 4 inverted by bisection
    (sigma_rel falls monotonically from MAX_SIGMA_REL at gamma = 0 towards 0)."""
    if not 0 < sigma_rel <= MAX_SIGMA_REL:
        raise ValueError(f"an EMA length sigma_rel must be in (0, {MAX_SIGMA_REL:.4f}], got {sigma_rel}")
    low, high = 0.0, 1.0
    while sigma_rel_of(high) > sigma_rel:
        high *= 2
    for _ in range(200):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if sigma_rel_of(middle) > sigma_rel else (low, middle)
    return 0.5 * (low + high)


class PowerEMA:
    """A float32 copy of a model's parameters, averaged with a power-function profile of width sigma_rel."""

    def __init__(self, model: nn.Module, sigma_rel: float) -> None:
        self.sigma_rel, self.gamma = sigma_rel, gamma_of(sigma_rel)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def beta(self, step: int) -> float:
        """The decay at training step `step` (1, 2, ...): (1 - 1/t)^(gamma + 1), 0 at the first step."""
        return (1.0 - 1.0 / step) ** (self.gamma + 1.0)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """ema <- beta ema + (1 - beta) theta after optimizer step `step`."""
        ema_params = list(self.model.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], 1.0 - self.beta(step))

    def parameters(self) -> dict[str, torch.Tensor]:
        """The averaged parameters by name (the model's own tensors)."""
        return dict(self.model.named_parameters())

    @torch.no_grad()
    def load_parameters(self, tensors: dict[str, torch.Tensor]) -> None:
        """Set the averaged parameters from tensors of the same names and shapes (a checkpoint's)."""
        for name, p in self.model.named_parameters():
            if tensors[name].shape != p.shape:
                raise ValueError(f"post-hoc EMA parameter {name} has shape {tuple(tensors[name].shape)}, "
                                 f"expected {tuple(p.shape)}")
            p.copy_(tensors[name])


def profile_dot(t_a: float, gamma_a: float, t_b: float, gamma_b: float) -> float:
    """The inner product of two profiles, the integral of p_a p_b over [0, min(t_a, t_b)] (each is 0 past its t):
    (ga + 1)(gb + 1) m^(ga + gb + 1) / ((ga + gb + 1) t_a^(ga + 1) t_b^(gb + 1)), in logs (t^gamma overflows)."""
    m = min(t_a, t_b)
    log = (math.log(gamma_a + 1) + math.log(gamma_b + 1) + (gamma_a + gamma_b + 1) * math.log(m)
           - math.log(gamma_a + gamma_b + 1) - (gamma_a + 1) * math.log(t_a) - (gamma_b + 1) * math.log(t_b))
    return math.exp(log)


@dataclass(frozen=True)
class Mix:
    """How to reconstruct one EMA profile from snapshots: weights[i] for snapshot profile i, and the
    relative L2 error of the mixed profile against the one asked for (0: exact)."""

    weights: tuple[float, ...]
    error: float


def solve_mix(snapshots: Sequence[tuple[int, float]], step: int, gamma: float) -> Mix:
    """The least-squares mix of snapshot profiles (step t_i, exponent gamma_i) closest to the profile of
    `gamma` at `step` (EDM2 Sec. 3.2 and Appendix C.3: solve A x = b, A_ij = <p_i, p_j>, b_i = <p_i, p_r>)."""
    if not snapshots:
        raise ValueError("no post-hoc EMA snapshots to reconstruct from")
    a = torch.tensor([[profile_dot(ti, gi, tj, gj) for tj, gj in snapshots] for ti, gi in snapshots],
                     dtype=torch.float64)
    b = torch.tensor([profile_dot(ti, gi, step, gamma) for ti, gi in snapshots], dtype=torch.float64)
    x = torch.linalg.lstsq(a, b[:, None], driver="gelsd").solution[:, 0]  # many snapshots are nearly collinear
    target = profile_dot(step, gamma, step, gamma)
    residual = max(float(x @ a @ x - 2 * x @ b) + target, 0.0)  # ||sum x_i p_i - p_r||^2
    return Mix(weights=tuple(x.tolist()), error=math.sqrt(residual / target))


# ---- snapshots on disk ---------------------------------------------------------------------------------

def profile_tensors(profiles: Sequence[PowerEMA]) -> dict[str, torch.Tensor]:
    """Every profile's parameters under one name each, "k/name" for profile k: a snapshot's and a checkpoint's."""
    return {f"{k}/{name}": p for k, profile in enumerate(profiles) for name, p in profile.parameters().items()}


def load_profile_tensors(profiles: Sequence[PowerEMA], tensors: dict[str, torch.Tensor]) -> None:
    """Set each profile's parameters from tensors named as profile_tensors names them (KeyError if one is missing)."""
    for k, profile in enumerate(profiles):
        profile.load_parameters({name: tensors[f"{k}/{name}"] for name in profile.parameters()})


def snapshot_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / SNAPSHOT_DIR / f"step-{step:08d}.safetensors"


def save_snapshot(run_dir: str | Path, step: int, profiles: Sequence[PowerEMA]) -> Path:
    """Every profile's parameters at `step`, written aside and renamed in (a crash leaves the old file or none)."""
    final = snapshot_path(run_dir, step)
    final.parent.mkdir(parents=True, exist_ok=True)
    aside = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    tensors = {key: p.detach().float().contiguous().cpu() for key, p in profile_tensors(profiles).items()}
    metadata = {"step": str(step), "sigma_rels": json.dumps([p.sigma_rel for p in profiles])}
    try:
        save_file(tensors, str(aside), metadata=metadata)
        atomic.fsync(aside)
        atomic.rename(aside, final)
        atomic.fsync(final.parent)
    finally:
        atomic.remove(aside)
    return final


def drop_snapshots_after(run_dir: str | Path, step: int) -> None:
    """Delete the snapshots of steps past `step`: a fresh run (step 0) or a resume starts a trajectory that
    those, left by an earlier or interrupted run, are not part of."""
    folder = Path(run_dir) / SNAPSHOT_DIR
    for path in folder.glob("*step-*.safetensors*") if folder.is_dir() else []:
        found = SNAPSHOT_NAME.search(path.name)
        if path.name.startswith(".tmp-") or (found and int(found.group(1)) > step):
            atomic.remove(path)


@dataclass(frozen=True)
class Snapshot:
    path: Path
    step: int
    sigma_rels: tuple[float, ...]


def list_snapshots(run_dir: str | Path, up_to: int | None = None) -> list[Snapshot]:
    """The run's snapshots at steps <= up_to (all: None), oldest first; one-line errors for unreadable ones."""
    folder = Path(run_dir) / SNAPSHOT_DIR
    found = []
    for path in sorted(folder.glob("step-*.safetensors")) if folder.is_dir() else []:
        named = SNAPSHOT_NAME.fullmatch(path.name)
        if not named or (up_to is not None and int(named.group(1)) > up_to):
            continue
        try:
            with safe_open(str(path), framework="pt") as opened:
                metadata = opened.metadata() or {}
            found.append(Snapshot(path, int(metadata["step"]), tuple(json.loads(metadata["sigma_rels"]))))
        except (OSError, SafetensorError, KeyError, ValueError, TypeError) as error:
            raise ValueError(f"post-hoc EMA snapshot {str(path)!r} is unreadable: "
                             f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
    return found


@dataclass(frozen=True)
class Reconstruction:
    """Parameters for one EMA length, with what they were made of."""

    parameters: dict[str, torch.Tensor]
    sigma_rel: float
    step: int
    snapshots: int
    error: float  # the mixed profile's relative L2 distance from the asked one


def reconstruct(run_dir: str | Path, sigma_rel: float, step: int) -> Reconstruction:
    """The parameters of a power-function EMA of width sigma_rel at `step`, mixed from the run's snapshots
    up to that step; one snapshot file is read at a time."""
    gamma = gamma_of(sigma_rel)
    snapshots = list_snapshots(run_dir, up_to=step)
    if not snapshots:
        raise FileNotFoundError(f"{str(Path(run_dir) / SNAPSHOT_DIR)!r} holds no post-hoc EMA snapshot up to step "
                                f"{step}: train with --set train.posthoc_ema=[0.05,0.1] to keep them")
    profiles = [(s.step, gamma_of(r)) for s in snapshots for r in s.sigma_rels]
    mix = solve_mix(profiles, step, gamma)
    total: dict[str, torch.Tensor] = {}
    weights = iter(mix.weights)
    for snap in snapshots:
        with safe_open(str(snap.path), framework="pt") as opened:
            for k in range(len(snap.sigma_rels)):
                w = next(weights)
                for key in (key for key in opened.keys() if key.startswith(f"{k}/")):
                    name = key.split("/", 1)[1]
                    value = opened.get_tensor(key).double() * w
                    total[name] = total[name] + value if name in total else value
    parameters = {name: value.float() for name, value in total.items()}
    return Reconstruction(parameters, sigma_rel, step, len(snapshots), mix.error)
