"""Networks. They see only (x_t, t) and a class label: schedules and parameterisations live in horseshoe.diffusion."""

from horseshoe.models.unet import NO_CLASS, UNet, UNetConfig

__all__ = ["NO_CLASS", "UNet", "UNetConfig"]
