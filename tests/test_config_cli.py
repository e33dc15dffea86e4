"""`horseshoe config` prints a TOML file that reads back into the same config; --help shows values."""

import pytest

from horseshoe.cli import main
from horseshoe.config import SAVED_BEFORE, Config, build_config, from_dict, load_toml
from horseshoe.runs.demo import demo_config


@pytest.mark.parametrize("config", [
    Config(),
    demo_config(),
    build_config(None, ["train.epochs=2.5", "data.count=none", "sample.lambda_min=none", "sample.steps=none",
                        "train.grad_clip=none", "diffusion.min_snr_gamma=5", "data.path=imgs",
                        "data.image_size=[16, 24]", "model.patch_size=1", "model.attention_resolutions=[8]",
                        "train.lr=3e-4"]),
])
def test_to_toml_reads_back_into_the_same_config(tmp_path, config):
    path = tmp_path / "config.toml"
    path.write_text(config.to_toml())
    assert load_toml(path) == config


def test_a_config_saved_before_a_key_existed_reads_as_it_was_trained():
    # Such a run trained with the value SAVED_BEFORE names (no augmentation, the border mirrored, class rows
    # N(0, 1)), not today's default: it resumes and reports as it began. A config that has the key keeps it.
    config = build_config(None, ["data.augment_p=0.25", "data.augment_border='replicate'", "model.class_embed_std=0.3"])
    saved = config.to_dict()
    assert from_dict(saved) == config
    oldest = {**saved, "data": {k: v for k, v in saved["data"].items() if k not in ("augment_p", "augment_border")},
              "model": {k: v for k, v in saved["model"].items() if k != "class_embed_std"}}
    c = from_dict(oldest)
    assert (c.data.augment_p, c.data.augment_border, c.model.class_embed_std) == (0.0, "reflect", 1.0)
    for section, keys in SAVED_BEFORE.items():
        for key, then in keys.items():
            assert getattr(getattr(config, section), key) != then
            old = {**saved, section: {k: v for k, v in saved[section].items() if k != key}}
            assert getattr(getattr(from_dict(old), section), key) == then
            assert from_dict(old) == build_config(None, [f"{section}.{key}={then!r}"], base=config)


def test_config_command_prints_the_resolved_config(tmp_path, capsys):
    folder = 'C:\\data "quoted"'
    assert main(["config", "--demo", "--set", "train.steps=77", "--data", folder]) == 0
    path = tmp_path / "mine.toml"
    path.write_text(capsys.readouterr().out)
    config = load_toml(path)
    assert config.train.steps == 77 and config.data.path == folder
    assert config.model == demo_config().model


def test_train_help_shows_the_default_values(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 10000, train.steps)" in text and "(default: auto, train.precision)" in text


def test_tensorboard_is_an_extra_said_before_anything_is_written(tmp_path, capsys):
    from training_helpers import cli_args

    try:
        import tensorboard  # noqa: F401
    except ImportError:
        out = tmp_path / "run"
        assert main(["train", "--out", str(out), "--steps", "1", *cli_args("train.tensorboard=true")]) == 2
        assert "pip install 'horseshoe[tensorboard]'" in capsys.readouterr().err
        assert not any(out.iterdir())
    else:
        out = tmp_path / "run"
        assert main(["train", "--out", str(out), "--steps", "1", "--no-progress",
                     *cli_args("train.tensorboard=true")]) == 0
        assert list((out / "tensorboard").iterdir())


def test_export_holds_the_weights_alone_and_samples_the_same_images(tmp_path, capsys):
    import numpy as np
    from training_helpers import cli_args

    run, model = tmp_path / "run", tmp_path / "model"
    assert main(["train", "--out", str(run), "--steps", "2", "--no-progress", *cli_args()]) == 0
    assert main(["export", str(run), "--out", str(model)]) == 0
    assert sorted(p.name for p in model.iterdir()) == ["config.json", "ema.safetensors", "state.json"]
    for source in (run, model):
        assert main(["sample", str(source), "--count", "3", "--npz", "--out", str(tmp_path / source.name / "s"),
                     "--no-progress"]) == 0
    same = [np.load(tmp_path / name / "s" / "samples.npz")["images"] for name in ("run", "model")]
    assert np.array_equal(*same)
    assert main(["evaluate", str(model), "--count", "8", "--heldout", "4", "--bpd-timesteps", "2", "--steps", "2",
                 "--no-progress"]) == 0
    assert (model / "eval.json").is_file() and (model / "eval" / "nearest.png").is_file()  # into the export itself
    capsys.readouterr()
    assert main(["export", str(run), str(model)]) == 2  # never over something (the folder as before --out)
    err = capsys.readouterr().err
    assert "deprecated: use --out" in err and "already exists and is not empty" in err
    assert main(["train", "--out", str(tmp_path / "again"), "--resume", str(model)]) == 2
    assert "holds weights only" in capsys.readouterr().err  # an export is for sampling, not for resuming
