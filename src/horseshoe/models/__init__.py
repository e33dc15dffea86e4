"""Networks. They see only (x_t, t): schedules and parameterisations live in horseshoe.diffusion."""

from horseshoe.models.unet import UNet, UNetConfig

__all__ = ["UNet", "UNetConfig"]
