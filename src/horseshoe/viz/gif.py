"""Animations of the sampling process: GIF always, MP4 when imageio-ffmpeg is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def save_gif(frames: list[np.ndarray], path: str | Path, fps: float = 12.0, hold_seconds: float = 2.0) -> Path:
    """Write frames (uint8 (H, W, C)) as a looping GIF; the last frame stays up for hold_seconds.

    Greyscale frames are stored exactly (a 256-level grey palette); colour frames are quantised.
    """
    if not frames:
        raise ValueError("no frames to write")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    images = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in frames]
    frame_ms = max(20, round(1000 / fps))  # browsers clamp shorter GIF delays
    durations = [frame_ms] * (len(images) - 1) + [max(frame_ms, round(hold_seconds * 1000))]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0, optimize=False)
    return path


def save_mp4(frames: list[np.ndarray], path: str | Path, fps: float = 12.0, hold_seconds: float = 2.0) -> Path | None:
    """Write an MP4 next to the GIF if imageio-ffmpeg is installed; None otherwise."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    held = frames + [frames[-1]] * int(round(hold_seconds * fps))
    h, w = held[0].shape[:2]
    even = [np.pad(f, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") for f in held]  # yuv420p needs even sizes
    writer = imageio_ffmpeg.write_frames(str(path), (w + w % 2, h + h % 2), fps=fps,
                                         pix_fmt_in="gray" if even[0].shape[-1] == 1 else "rgb24")
    writer.send(None)
    for frame in even:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return Path(path)


def read_gif(path: str | Path) -> list[np.ndarray]:
    """All frames of a GIF as uint8 arrays (greyscale GIFs as (H, W, 1))."""
    frames = []
    with Image.open(path) as gif:
        grey = gif.mode in ("L", "P") and all(c[0] == c[1] == c[2] for c in _palette(gif))
        for i in range(gif.n_frames):
            gif.seek(i)
            frame = np.asarray(gif.convert("L" if grey else "RGB"))
            frames.append(frame[..., None] if frame.ndim == 2 else frame)
    return frames


def _palette(gif: Image.Image) -> list[tuple[int, int, int]]:
    pal = gif.getpalette() or []
    return [tuple(pal[i:i + 3]) for i in range(0, len(pal), 3)]
