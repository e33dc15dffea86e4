"""Non-leaking augmentation: the transforms against closed forms and their inverses, the draws, the network's
augmentation input (zero at sampling), and training with it: off is as before, on resumes exactly."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from training_helpers import cli_args, tiny_config, tiny_trainer

from horseshoe.cli import main
from horseshoe.config import build_config
from horseshoe.data import BatchLoader, DataConfig, build_dataset
from horseshoe.data.augment import (
    AUGMENT_DIM,
    AUGMENTATIONS,
    UNIFORMS,
    AugmentParams,
    augment_images,
    content_matrix,
    draw_params,
    identity,
)
from horseshoe.data.loader import position_uniforms
from horseshoe.models import UNet, UNetConfig
from horseshoe.recipe import AUTO_AUGMENT_P, SMALL_FOLDER, with_augmentation


def params(count: int = 1, **values) -> AugmentParams:
    """Hand-made parameters: identity but for `values` (python numbers or per-image lists), marked applied."""
    base = identity(count)
    changed = {}
    for name, value in values.items():
        like = getattr(base, name)
        changed[name] = torch.as_tensor(value, dtype=like.dtype).expand_as(like).clone()
    applied = base.applied.clone()
    for name, column in (("log2_scale", 4), ("aniso", 5), ("angle", 6)):
        applied[:, column] = name in values
    return dataclasses.replace(base, **changed, applied=applied)


def pixel_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel centres' x (right) and y (down) from the image centre, (H, W) each."""
    y = torch.arange(height, dtype=torch.float64) + 0.5 - height / 2
    x = torch.arange(width, dtype=torch.float64) + 0.5 - width / 2
    return x[None, :].expand(height, width), y[:, None].expand(height, width)


def smooth_image(height: int = 32, width: int = 32) -> torch.Tensor:
    """(1, 2, H, W): a wide Gaussian blob and a slow wave, smooth enough for bilinear resampling."""
    x, y = pixel_grid(height, width)
    blob = torch.exp(-((x - 2) ** 2 + (y + 1) ** 2) / (2 * 6.0**2))
    wave = torch.cos(2 * math.pi * (x + 0.5 * y) / 24)
    return torch.stack([blob, wave])[None].float()


# ---- the transforms --------------------------------------------------------------------------------------


@pytest.mark.parametrize("forward, backward", [
    (dict(xflip=True), dict(xflip=True)),
    (dict(yflip=True), dict(yflip=True)),
    (dict(turns=1), dict(turns=3)),
    (dict(turns=2), dict(turns=2)),
])
def test_flips_and_quarter_turns_undo_exactly(forward, backward):
    x = torch.randn(2, 3, 8, 8)
    moved = augment_images(x, params(2, **forward))
    assert not torch.equal(moved, x)
    assert torch.equal(augment_images(moved, params(2, **backward)), x)


def test_quarter_turns_and_flips_are_torch_s():
    x = torch.randn(4, 1, 6, 6)
    turned = augment_images(x, params(4, turns=[0, 1, 2, 3]))
    for k in range(4):
        assert torch.equal(turned[k], torch.rot90(x[k], k, dims=(-2, -1)))
    assert torch.equal(augment_images(x, params(4, xflip=True)), x.flip(-1))
    assert torch.equal(augment_images(x, params(4, yflip=True)), x.flip(-2))


def test_integer_shift_moves_content_and_mirrors_the_border_and_undoes_inside():
    x = torch.randn(2, 1, 6, 8)
    moved = augment_images(x, params(2, shift=[[3, -2], [-1, 1]]), border="reflect")
    # Image 0: content 3 right and 2 up; the gap on the left is the first columns mirrored (c b a | a b c).
    assert torch.equal(moved[0, :, :4, 3:], x[0, :, 2:, :5])
    assert torch.equal(moved[0, :, :4, :3], x[0, :, 2:, :3].flip(-1))
    back = augment_images(moved, params(2, shift=[[-3, 2], [1, -1]]))
    assert torch.equal(back[0, :, 2:, :5], x[0, :, 2:, :5])  # exact where the content stayed in frame
    assert torch.equal(back[1, :, :5, 1:], x[1, :, :5, 1:])


def test_replicate_border_repeats_the_edge_pixel_into_the_gap_of_a_shift():
    x = torch.randn(1, 2, 6, 8)
    moved = augment_images(x, params(1, shift=[[3, -2]]), border="replicate")
    assert torch.equal(moved[0, :, :4, 3:], x[0, :, 2:, :5])  # the content moves as with a mirror
    assert torch.equal(moved[0, :, :4, :3], x[0, :, 2:, :1].expand(-1, -1, 3))  # the gap: column 0 repeated
    assert torch.equal(moved[0, :, 4:, 3:], x[0, :, 5:, :5].expand(-1, 2, -1))  # and the last row


@pytest.mark.parametrize("border, stray", [("reflect", True), ("replicate", False)])
def test_a_shrunk_shape_at_the_edge_gets_mirrored_pieces_only_with_reflect(border, stray):
    # A block touching the left edge of a black image, shrunk by half about the centre, lands in rows 7-8
    # (columns 2-5). A mirror also brings in its reflections from above and below the frame, stray
    # pieces in rows 0 and 15; repeating the edge pixel brings in black there, and in rows 7-8 the
    # block's own edge, so what is lit stays one piece reaching the edge.
    x = torch.full((1, 1, 16, 16), -1.0)
    x[..., 6:10, 0:4] = 1.0
    lit = augment_images(x, params(1, log2_scale=-1.0), border=border)[0, 0] > 0
    assert lit[7:9, 2:6].all() and not lit[1:7].any() and not lit[9:15].any() and not lit[:, 6:].any()
    assert bool(lit[[0, 15]].any()) is stray
    assert bool(lit[7:9, :2].all()) is not stray


def test_unknown_border_is_refused():
    with pytest.raises(ValueError, match="border must be one of reflect, replicate, got 'wrap'"):
        augment_images(torch.zeros(1, 1, 4, 4), params(1, shift=[[1, 0]]), border="wrap")
    with pytest.raises(ValueError, match="data.augment_border must be one of"):
        DataConfig(augment_border="zeros")


@pytest.mark.parametrize("height, width", [(16, 16), (12, 20)])
def test_continuous_transforms_move_a_ramp_by_their_closed_forms(height, width):
    # Bilinear resampling reproduces a linear function exactly, so the warped coordinate ramps are the
    # coordinates moved back through the inverse of the content matrix, here for a mixed transform.
    x, y = pixel_grid(height, width)
    ramps = torch.stack([x, y])[None].float()
    p = params(1, log2_scale=0.3, aniso=-0.2, aniso_angle=0.7, angle=0.4)
    warped = augment_images(ramps, p)[0].double()
    inverse = torch.linalg.inv(content_matrix(p)[0])
    source = torch.einsum("ij,jhw->ihw", inverse, torch.stack([x, y]))
    inside = (source[0].abs() < width / 2 - 1) & (source[1].abs() < height / 2 - 1)  # no mirrored border
    assert inside.float().mean() > 0.5
    torch.testing.assert_close(warped[:, inside], source[:, inside], rtol=0, atol=1e-4)


def test_a_quarter_rotation_is_a_quarter_turn_and_scale_and_stretch_act_on_the_axes():
    x = torch.randn(2, 2, 8, 8)
    turned = augment_images(x, params(2, angle=math.pi / 2))
    torch.testing.assert_close(turned, torch.rot90(x, 1, dims=(-2, -1)), rtol=0, atol=1e-5)  # the same sense
    m = content_matrix(params(1, log2_scale=1.0, aniso=0.5, aniso_angle=0.0))[0]
    torch.testing.assert_close(m, torch.tensor([[2 * 2**0.5, 0.0], [0.0, 2 * 2**-0.5]], dtype=torch.float64))
    m = content_matrix(params(1, aniso=1.0, aniso_angle=math.pi / 2))[0]  # stretched along y
    torch.testing.assert_close(m, torch.tensor([[0.5, 0.0], [0.0, 2.0]], dtype=torch.float64))


@pytest.mark.parametrize("forward, backward", [
    (dict(angle=0.5), dict(angle=-0.5)),
    (dict(log2_scale=0.3), dict(log2_scale=-0.3)),
    (dict(aniso=0.3, aniso_angle=1.0), dict(aniso=-0.3, aniso_angle=1.0)),
])
def test_continuous_transforms_undo_on_a_smooth_image(forward, backward):
    x = smooth_image()
    back = augment_images(augment_images(x, params(1, **forward)), params(1, **backward))
    gx, gy = pixel_grid(32, 32)
    centre = gx**2 + gy**2 < 10**2  # what no transform here moved out of the frame and back
    error = (back - x)[..., centre].abs().max()
    assert error < 0.02, error  # two bilinear resamplings of a smooth image
    assert (augment_images(x, params(1, **forward)) - x)[..., centre].abs().max() > 0.1  # it did move


def test_all_transforms_at_once_undo_in_reverse_order():
    x = smooth_image()
    p = params(1, xflip=True, yflip=True, turns=1, shift=[[2, -1]], log2_scale=0.2, aniso=0.2, aniso_angle=0.3,
               angle=-1.0)
    moved = augment_images(x, p)
    back = augment_images(moved, params(1, log2_scale=-0.2, angle=1.0))  # the continuous part first:
    back = augment_images(back, params(1, aniso=-0.2, aniso_angle=0.3))  # rotation after stretch after scale
    back = augment_images(back, params(1, log2_scale=0.0))  # (a no-op resampling changes nothing measurable)
    back = augment_images(back, params(1, shift=[[-2, 1]]))
    back = augment_images(back, params(1, turns=3))
    back = augment_images(back, params(1, yflip=True))
    back = augment_images(back, params(1, xflip=True))
    gx, gy = pixel_grid(32, 32)
    centre = gx**2 + gy**2 < 8**2
    assert (back - x)[..., centre].abs().max() < 0.03


def test_augment_leaves_the_batch_and_unaugmented_images_alone():
    x = torch.randn(3, 1, 8, 8)
    kept = x.clone()
    out = augment_images(x, params(3, angle=[0.0, 0.3, 0.0], xflip=[False, False, True]))
    assert torch.equal(x, kept)
    assert torch.equal(out[0], x[0]) and not torch.equal(out[1], x[1]) and torch.equal(out[2], x[2].flip(-1))


# ---- the draws and the vector ------------------------------------------------------------------------------


def test_each_transform_is_applied_with_probability_p_and_the_vector_says_so():
    n, p = 40_000, 0.12
    drawn = draw_params(np.random.default_rng(0).random((n, UNIFORMS)), p, AUGMENTATIONS, 16, 16)
    share = drawn.applied.double().mean(0)
    assert (share - p).abs().max() < 4 * math.sqrt(p * (1 - p) / n)  # within binomial error, each transform
    vector = drawn.vector(16, 16)
    assert vector.shape == (n, AUGMENT_DIM)
    groups = [[0], [1], [2, 3], [4, 5], [6], [9, 10], [7, 8]]  # AUGMENTATIONS' columns in the vector
    for k, columns in enumerate(groups):
        told = vector[:, columns].ne(0).any(1)
        assert not (told & ~drawn.applied[:, k]).any()  # never told of a transform that was not applied
        if AUGMENTATIONS[k] != "translate":  # (a drawn shift may be 0 pixels)
            assert torch.equal(told, drawn.applied[:, k])
    assert set(drawn.turns[drawn.applied[:, 2]].tolist()) == {1, 2, 3}
    assert drawn.shift.abs().max() == 2 and drawn.angle.abs().max() <= math.pi
    only = draw_params(np.random.default_rng(0).random((n, UNIFORMS)), p, ("rotate",), 12, 16)
    assert only.applied[:, :6].sum() == 0 and torch.equal(only.angle, drawn.angle)  # same draws, others off
    assert set(draw_params(np.zeros((4, UNIFORMS)), 0.5, ("rotate90",), 8, 16).turns.tolist()) == {2}


def test_draws_depend_on_the_stream_position_alone():
    config = DataConfig(count=64, image_size=16, augment_p=0.5)
    dataset = build_dataset(config)
    single = BatchLoader(dataset, config, batch_size=16, seed=3)
    ranks = [BatchLoader(dataset, config, batch_size=16, seed=3, rank=r, world_size=2) for r in range(2)]
    for _ in range(3):
        whole = single.next_training_batch()
        parts = [r.next_training_batch() for r in ranks]
        assert torch.equal(whole.augment.vector(16, 16), torch.cat([q.augment.vector(16, 16) for q in parts]))
        assert torch.equal(whole.images, torch.cat([q.images for q in parts]))
    u = position_uniforms(3, np.arange(1000), UNIFORMS)
    assert u.min() >= 0 and u.max() < 1 and abs(np.corrcoef(u.T)[np.triu_indices(UNIFORMS, 1)]).max() < 0.15
    assert BatchLoader(dataset, DataConfig(count=64, image_size=16, augment_p=0.0), 4).next_training_batch().augment \
        is None


def test_labels_describe_the_image_before_non_leaking_augmentation():
    config = DataConfig(count=64, image_size=16, rotation="four", hflip=False, augment_p=0.9)
    dataset = build_dataset(config)
    batch = BatchLoader(dataset, config, batch_size=64).next_training_batch()
    assert batch.augment.applied.any(1).all()
    assert torch.equal(batch.labels, torch.from_numpy(dataset.get_labels(BatchLoader(dataset, config, 64)
                                                                          .indices(0))))


# ---- the network ---------------------------------------------------------------------------------------------


def test_the_augmentation_input_is_zero_unless_given():
    config = UNetConfig(base_channels=16, channel_mults=(1, 2), norm_groups=8, augment_dim=AUGMENT_DIM)
    torch.manual_seed(0)
    net = UNet(config, (1, 16, 16)).eval()
    assert not net.augment_embed.weight.any()  # a fresh network starts by ignoring it
    for weight in net.parameters():  # the zero-initialised layers too, so that the output depends on the embedding
        if not weight.any():
            torch.nn.init.normal_(weight, std=0.1)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([10, 500])
    with torch.no_grad():
        plain = net(x, t)
        assert torch.equal(plain, net(x, t, None, augment=torch.zeros(2, AUGMENT_DIM)))
        told = net(x, t, augment=torch.tensor([[1.0] + [0.0] * (AUGMENT_DIM - 1)] * 2))
    assert (told - plain).abs().max() > 1e-3
    with pytest.raises(ValueError, match=r"expected augment of shape \(2, 11\), got \(2, 3\)"):
        net(x, t, augment=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="model.augment_dim = 0"):
        UNet(dataclasses.replace(config, augment_dim=0), (1, 16, 16))(x, t, augment=torch.zeros(2, AUGMENT_DIM))


# ---- training ------------------------------------------------------------------------------------------------


def make_folder(path, count: int, size: int = 16):
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8), "L").save(path / f"{i:03d}.png")
    return path


def test_auto_is_on_for_small_folders_and_off_for_the_built_in_horseshoes(tmp_path):
    builtin = tiny_trainer(tmp_path / "a", "train.steps=1")
    assert builtin.config.data.augment_p == 0.0 and builtin.config.model.augment_dim == 0
    assert builtin.state.model.augment_embed is None
    assert builtin.state.augment_line.startswith("augmentation: off (auto: the built-in horseshoes")
    small = tiny_trainer(tmp_path / "b", "train.steps=1", f"data.path={str(make_folder(tmp_path / 'imgs', 5))!r}")
    assert small.config.data.augment_p == AUTO_AUGMENT_P and small.config.model.augment_dim == AUGMENT_DIM
    line = small.state.augment_line
    assert "on, each of xflip, translate, scale, aniso" in line and "5 images" in line
    config = build_config(None, ["data.path='x'"])
    assert with_augmentation(config, SMALL_FOLDER)[0].data.augment_p == 0.0
    assert with_augmentation(config, SMALL_FOLDER - 1)[0].data.augment_p == AUTO_AUGMENT_P
    shapes = build_config(None, ["data.builtin='shapes'"])  # the built-in shapes count as a folder
    assert with_augmentation(shapes, 32)[0].data.augment_p == AUTO_AUGMENT_P
    assert "320 built-in shapes, 100 or more" in with_augmentation(shapes, 320)[1]
    off, line = with_augmentation(build_config(None, ["data.path='x'", "data.augment=[]"]), 10)
    assert off.model.augment_dim == 0 and line == "augmentation: off (data.augment lists no transform)"


def test_p_zero_trains_as_without_the_feature(tmp_path):
    # A network that has the augmentation input and is always told "none" learns exactly what one without
    # it learns: the same weights bit for bit (dropout and the leaking flips on), its own map left at zero.
    plain = tiny_trainer(tmp_path / "a", "train.steps=2")
    plain.fit()
    told_none = tiny_trainer(tmp_path / "b", "train.steps=2", "data.augment_p=0", f"model.augment_dim={AUGMENT_DIM}")
    told_none.fit()
    a, b = plain.state.model.state_dict(), told_none.state.model.state_dict()
    assert set(b) - set(a) == {"augment_embed.weight"} and not b["augment_embed.weight"].any()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("border", ["replicate", "reflect"])
def test_training_augments_the_batch_and_tells_the_network(tmp_path, border):
    trainer = tiny_trainer(tmp_path, "train.steps=1", "data.augment_p=0.5", f"data.augment_border={border!r}")
    batch = trainer.state.loader.next_training_batch()
    x0, vector = trainer._augmented(batch)
    assert torch.equal(x0, augment_images(batch.images, batch.augment, border))
    other = {"replicate": "reflect", "reflect": "replicate"}[border]
    assert not torch.equal(x0, augment_images(batch.images, batch.augment, other))  # the setting is the one used
    assert torch.equal(vector, batch.augment.vector(16, 16)) and vector.ne(0).any(1).sum() >= 4
    seen = []
    trainer.state.model.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs["augment"]),
                                                  with_kwargs=True)
    trainer.state.loader.position = 0
    trainer.fit()
    assert torch.equal(seen[0], vector)


def test_an_augmented_run_resumes_bit_exactly(tmp_path):
    extra = ["data.augment_p=0.5"]  # dropout and the leaking flips on too
    straight = tiny_trainer(tmp_path / "a", "train.steps=3", *extra)
    straight.fit()
    tiny_trainer(tmp_path / "b", "train.steps=2", *extra).fit()
    resumed = tiny_trainer(tmp_path / "b", "train.steps=3", *extra)
    resumed.resume(tmp_path / "b")
    resumed.fit()
    a, b = straight.state.model.state_dict(), resumed.state.model.state_dict()
    assert a["augment_embed.weight"].any() and all(torch.equal(a[k], b[k]) for k in a)
    assert straight.state.loader.position == resumed.state.loader.position


def test_cli_run_on_a_small_folder_saves_the_resolved_setting_and_says_it(tmp_path, capsys):
    folder, out = make_folder(tmp_path / "imgs", 6), tmp_path / "run"
    assert main(["train", "--out", str(out), "--data", str(folder), "--steps", "2", "--no-progress",
                 *cli_args()]) == 0
    printed = capsys.readouterr().out
    assert "augmentation: on, each of xflip, translate, scale, aniso with probability " \
           "0.25, the network told which (auto: a folder of 6 images, fewer than 100)" in printed
    saved = json.loads((out / "config.json").read_text())
    assert saved["data"]["augment_p"] == 0.25 and saved["model"]["augment_dim"] == AUGMENT_DIM
    assert saved["data"]["augment"] == ["xflip", "translate", "scale", "aniso"]
    start = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert start["augment"].startswith("augmentation: on")
    assert main(["train", "--out", str(out), "--resume", "--steps", "3", "--no-progress"]) == 0
    assert main(["sample", str(out), "--count", "2", "--out", str(tmp_path / "s"), "--no-progress"]) == 0


def test_bad_settings_are_one_line_errors(tmp_path, capsys):
    for value in ("1", "-0.1", "nan"):
        with pytest.raises(ValueError, match=f"data.augment_p must be in \\[0, 1\\) \\(none: auto\\), got {value}"):
            tiny_config(f"data.augment_p={value}")
    with pytest.raises(ValueError, match="data.augment must list distinct names from xflip, .*got \\['spin'\\]"):
        tiny_config("data.augment=['spin']")
    with pytest.raises(ValueError, match="model.augment_dim must be 0 or 11"):
        tiny_config("model.augment_dim=3")
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--steps", "1", *cli_args("data.augment_p=1.5")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "horseshoe: error: data.augment_p must be in [0, 1) (none: auto), got 1.5" and not out.exists()


def test_a_folder_of_one_image_trains_and_evaluates_with_a_warning(tmp_path, capsys):
    with pytest.warns(UserWarning, match=r"folder '.*one' holds a single image: every sample will be a copy of it"):
        trainer = tiny_trainer(tmp_path / "run", "train.steps=1",
                               f"data.path={str(make_folder(tmp_path / 'one', 1))!r}")
    assert trainer.config.data.augment_p == AUTO_AUGMENT_P  # one image: all the more reason to augment
    trainer.fit()
    assert trainer.step == 1
    # evaluate measures what it can and says what the copy check cannot, as train does (no spacing to measure).
    assert main(["evaluate", str(tmp_path / "run"), "--count", "4", "--heldout", "1", "--bpd-timesteps", "2",
                 "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "warning: one training image: every sample is a copy of it" in out and "SWD x1e3: mean" in out
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["novelty"] is None
    assert not (tmp_path / "run" / "eval" / "nearest.png").exists()
