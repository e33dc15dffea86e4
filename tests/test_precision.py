"""Mixed precision: which precision 'auto' picks, fp16 autocast, and fp16 training with a gradient scaler."""

import json
import math

import pytest
import torch
from safetensors import safe_open
from training_helpers import on_device, tiny_config, tiny_trainer

from horseshoe import runtime
from horseshoe.data import builtin_images
from horseshoe.diffusion.objectives import loss_from_noise
from horseshoe.runs.load import load_run
from horseshoe.training.trainer import NonFiniteLoss, Trainer


@pytest.mark.parametrize("kind, fast, expected", [
    ("cuda", True, "bf16"),   # Ampere and newer
    ("cuda", False, "fp16"),  # T4, V100: fp16 tensor cores, bf16 only emulated
    ("cpu", True, "bf16"),    # AVX-512 BF16 or AMX
    ("cpu", False, "fp32"),   # no fast half precision of either kind
    ("mps", False, "fp32"),
])
def test_auto_precision_follows_the_device(monkeypatch, kind, fast, expected):
    monkeypatch.setattr(runtime, "bf16_is_fast", lambda d: fast)
    assert runtime.resolve_precision("auto", torch.device(kind)) == expected
    with pytest.raises(ValueError, match="unknown precision 'fp8'; choose one of auto, bf16, fp16, fp32"):
        runtime.resolve_precision("fp8", torch.device(kind))


@pytest.mark.parametrize("capability, fast", [((7, 0), False), ((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_bf16_is_fast_only_from_ampere_on(monkeypatch, capability, fast):
    # torch.cuda.is_bf16_supported() says yes on a V100 or T4 too (emulation): the capability decides.
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.version, "hip", None)
    assert runtime.bf16_is_fast(torch.device("cuda")) is fast


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16),
                                              ("fp32", torch.float32)])
def test_autocast_runs_matmuls_in_the_precision(device, precision, dtype):
    dev = runtime.pick_device(device)
    layer = torch.nn.Linear(8, 8).to(dev)
    with runtime.autocast(dev, precision):
        out = layer(torch.randn(2, 8, device=dev))
    assert out.dtype == dtype and layer.weight.dtype == torch.float32  # weights stay float32


@pytest.mark.parametrize("precision, dtype", [("auto", torch.float32), ("bf16", torch.bfloat16)])
def test_a_named_precision_is_trained_in_where_auto_picks_another(monkeypatch, precision, dtype):
    # A CPU without fast bf16: auto trains in fp32, and train.precision='bf16' runs the network in bf16 anyway.
    monkeypatch.setattr(runtime, "bf16_is_fast", lambda d: False)
    trainer = Trainer(tiny_config("train.steps=1", f"train.precision={precision!r}", "train.device='cpu'"))
    outputs = []
    trainer.state.model.register_forward_hook(lambda module, args, out: outputs.append(out.dtype))
    assert trainer.train_step(total_steps=1).step == 1
    assert trainer.precision == {"auto": "fp32"}.get(precision, precision) and outputs == [dtype]


def held_out_loss(trainer: Trainer) -> float:
    """The float32 loss of the model (dropout off) on 64 fixed images, timesteps and noises."""
    c = trainer.config
    x0 = builtin_images(c.data, 10_000, 64).to(trainer.device)
    t = torch.linspace(0, c.diffusion.num_steps - 1, 64, device=trainer.device).long()
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5)).to(trainer.device)
    model = trainer.state.model.eval()
    with torch.no_grad():
        loss = loss_from_noise(model, trainer.schedule, x0, t, eps, c.diffusion.prediction).item()
    model.train()
    return loss


def test_fp16_training_lowers_the_loss_as_fp32_does(device):
    # The same 4 steps in fp32 and in fp16: the held-out loss falls (0.914 -> 0.846 measured) and fp16
    # lands where fp32 does (2e-6 apart): the scaler's factor is taken out again before clipping and AdamW.
    losses = {}
    for precision in ("fp32", "fp16"):
        trainer = Trainer(tiny_config("train.steps=4", "model.dropout=0.0", f"train.precision={precision!r}",
                                      *on_device(device)))
        before = held_out_loss(trainer)
        result = trainer.fit()
        assert result.step == 4 and result.scaler_skipped == 0
        losses[precision] = (before, held_out_loss(trainer))
    (before, fp32), (_, fp16) = losses["fp32"], losses["fp16"]
    assert fp16 < before - 0.03
    assert abs(fp16 - fp32) < 0.01 * (before - fp32)


def test_fp16_overflow_is_skipped_counted_and_saved(tmp_path, device):
    # A scale of 2^20 makes the scaled gradients overflow fp16 (max 65504): those steps are skipped and
    # the scale halved each time, not reported as a non-finite loss; the scaler's state is in the checkpoint.
    trainer = tiny_trainer(tmp_path, "train.steps=2", "train.precision='fp16'", *on_device(device))
    trainer.state.scaler = torch.amp.GradScaler(trainer.device.type, init_scale=2.0**20)
    result = trainer.fit()
    assert result.step == 2 and result.nonfinite_skipped == 0 and result.scaler_skipped >= 1
    scale = 2.0**20 / 2**result.scaler_skipped  # halved per overflow, no growth before 2000 clean steps
    assert trainer.state.scaler.get_scale() == scale
    path = trainer.save(tmp_path)
    state = json.loads((path / "state.json").read_text())
    assert "grad_scaler" not in state  # it goes with the optimizer state, which older checkpoints drop
    with safe_open(str(path / "optimizer.safetensors"), framework="pt") as saved:
        assert json.loads(saved.metadata()["state"])["grad_scaler"] == {
            "scale": scale, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
            "_growth_tracker": 2}
    assert state["scaler_skipped"] == result.scaler_skipped
    resumed = tiny_trainer(tmp_path, "train.steps=2", "train.precision='fp16'", *on_device(device))
    resumed.resume(path)
    assert resumed.state.scaler.state_dict() == trainer.state.scaler.state_dict()
    assert resumed.state.scaler_skipped == result.scaler_skipped


def test_a_nan_loss_in_fp16_is_still_an_error(tmp_path):
    # The scaler skips overflowing gradients, but a loss that is itself NaN stays a non-finite loss.
    trainer = tiny_trainer(tmp_path, "train.steps=2", "train.precision='fp16'")
    model = trainer.network
    trainer.network = lambda x, t: model(x, t) * math.nan
    with pytest.raises(NonFiniteLoss, match="loss became nan at step 1"):
        trainer.fit()
    assert trainer.state.scaler_skipped == 0


def test_a_run_samples_in_fp16_like_fp32(tmp_path, device):
    trainer = tiny_trainer(tmp_path, "train.steps=1", *on_device(device))
    trainer.fit()
    trainer.save(tmp_path)
    samples = {}
    for precision in ("fp32", "fp16"):
        run = load_run(tmp_path, device=device, precision=precision)
        x = torch.zeros(1, *run.image_shape, device=run.device)
        assert run.denoiser.network(x, torch.zeros(1, dtype=torch.long, device=run.device)).dtype == (
            torch.float16 if precision == "fp16" else torch.float32)
        samples[precision] = run.generate(run.sampler("ddim", 2), 4, seed=3)
    # fp16 keeps ~3 significant digits: the same images (2e-5 apart measured), far within one 8-bit grey level.
    torch.testing.assert_close(samples["fp16"], samples["fp32"], rtol=0, atol=2e-3)
