"""The matched network, built three ways: horseshoe's U-Net, diffusers' UNet2DModel, lucidrains' Unet.

The DDPM CIFAR-10 layout at base width 64: widths (64, 128, 128, 128) at 32x32 (or (64, 128, 256,
256) at 64x64), two residual blocks per level, self-attention at 16x16 and in the middle, with one
head as in the DDPM original.
lucidrains' Unet cannot drop attention from the other levels: it puts linear attention there
(full attention at 16x16 and in the middle, as configured). Parameters and FLOPs are reported for
each model, so the comparison is on achieved FLOP/s as well as images/s.

Every builder returns `forward(x, t) -> tensor` with t an integer (B,) tensor.
"""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass
from pathlib import Path

from torch import nn

LAYOUTS = {
    32: {"widths": (64, 128, 128, 128), "attention_level": 1},
    64: {"widths": (64, 128, 256, 256), "attention_level": 2},
}


@dataclass
class Built:
    name: str
    module: nn.Module
    forward: object  # callable (x, t) -> eps
    channels: int = 3


def demo_model(size: int) -> Built:
    """horseshoe's default network (the demo's: 2x2 patches, widths 64-128-128), one channel."""
    from horseshoe.models import UNet
    from horseshoe.runs.demo import demo_config

    config = demo_config([f"data.image_size={size}"])
    net = UNet(config.model, config.data.shape)
    return Built("horseshoe-default", net, net, channels=1)


def ours(size: int, channels: int = 3) -> Built:
    from horseshoe.models import UNet, UNetConfig

    layout = LAYOUTS[size]
    mults = tuple(w // layout["widths"][0] for w in layout["widths"])
    net = UNet(UNetConfig(base_channels=layout["widths"][0], channel_mults=mults, num_res_blocks=2,
                          attention_resolutions=(size // 2 ** layout["attention_level"],), norm_groups=32,
                          head_channels=max(layout["widths"]), patch_size=1),  # one head everywhere
               (channels, size, size))
    return Built("horseshoe", net, net, channels)


def diffusers_unet(size: int, channels: int = 3) -> Built:
    from diffusers import UNet2DModel

    layout = LAYOUTS[size]
    level = layout["attention_level"]
    down = tuple("AttnDownBlock2D" if i == level else "DownBlock2D" for i in range(4))
    up = tuple("AttnUpBlock2D" if i == 3 - level else "UpBlock2D" for i in range(4))
    net = UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels, layers_per_block=2,
                      block_out_channels=layout["widths"], down_block_types=down, up_block_types=up,
                      attention_head_dim=max(layout["widths"]), norm_num_groups=32)  # one head
    return Built("diffusers", net, lambda x, t: net(x, t).sample, channels)


def _import_lucidrains():
    """Import lucidrains' model module without its training-only dependencies.

    The package is installed with --no-deps (torchvision has no CPU build here); the modules it
    imports only for its Trainer, data loading and FID (torchvision, accelerate, ema_pytorch,
    scipy.optimize) are replaced by empty stand-ins, and the package's __init__ (which imports
    everything) is skipped. Unet and GaussianDiffusion themselves are the real code.
    """
    name = "denoising_diffusion_pytorch.denoising_diffusion_pytorch"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec("denoising_diffusion_pytorch")
    if spec is None:
        raise ImportError("denoising-diffusion-pytorch is not installed (make bench installs it with --no-deps)")
    package = types.ModuleType("denoising_diffusion_pytorch")
    package.__path__ = [str(Path(spec.origin).parent)]
    sys.modules.setdefault("denoising_diffusion_pytorch", package)
    stubs = {"torchvision": ["transforms", "utils"], "accelerate": ["Accelerator"], "ema_pytorch": ["EMA"],
             "scipy.optimize": ["linear_sum_assignment"]}
    for module_name, attrs in stubs.items():
        if importlib.util.find_spec(module_name.split(".")[0]) is None or module_name == "torchvision":
            stub = types.ModuleType(module_name)
            for attr in attrs:
                setattr(stub, attr, None)
            sys.modules[module_name] = stub
            if "." in module_name:
                parent = sys.modules.setdefault(module_name.split(".")[0], types.ModuleType(module_name.split(".")[0]))
                setattr(parent, module_name.split(".")[1], stub)
    return importlib.import_module(name)


def lucidrains_unet(size: int, channels: int = 3) -> Built:
    module = _import_lucidrains()
    layout = LAYOUTS[size]
    mults = tuple(w // layout["widths"][0] for w in layout["widths"])
    full = tuple(i == layout["attention_level"] for i in range(4))
    net = module.Unet(dim=layout["widths"][0], dim_mults=mults, channels=channels, full_attn=full,
                      attn_dim_head=layout["widths"][layout["attention_level"]], attn_heads=1, flash_attn=True)
    return Built("lucidrains", net, lambda x, t: net(x, t), channels)


BUILDERS = {"horseshoe": ours, "diffusers": diffusers_unet, "lucidrains": lucidrains_unet}
