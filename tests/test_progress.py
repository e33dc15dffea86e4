"""Every wait over a few seconds shows progress on a terminal, and none with --no-progress."""

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest
from training_helpers import tiny_trainer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    tiny_trainer(out, "train.steps=1", "train.checkpoint_every=1").fit()
    return out


def on_a_terminal(args, cwd):
    """Run horseshoe with a pseudo-terminal as stderr (where progress bars go); returns what it wrote there."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 0x0 terminal hides bars
    done = subprocess.run([sys.executable, "-m", "horseshoe", *args], stdout=subprocess.PIPE, stderr=child,
                          cwd=cwd, timeout=120)
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal was closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert done.returncode == 0, b"".join(chunks)[-2000:]
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("command", [
    ["sample", "{run}", "--count", "2", "--steps", "3", "--out", "s"],
    pytest.param(["evaluate", "{run}", "--count", "4", "--heldout", "2", "--bpd-timesteps", "2", "--steps", "2"],
                 marks=pytest.mark.slow),  # the same bar; two more processes
])
def test_progress_on_a_terminal_and_none_with_no_progress(run_dir, tmp_path, command):
    args = [a.format(run=run_dir) for a in command]
    assert "%|" in on_a_terminal(args, tmp_path)  # a bar: 'sampling:  50%|#####     | 3/6'
    assert "%|" not in on_a_terminal([*args, "--no-progress"], tmp_path)
