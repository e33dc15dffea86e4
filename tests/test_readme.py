"""The README's Python quick start must really run."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the quick start writes runs/quick
    text = README.read_text()
    block = re.search(r"## Quick start.*?```python\n(.*?)```", text, re.S)
    assert block, "README has no Python quick start"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) <= 8
    namespace: dict = {}
    exec(compile(block.group(1), "README quick start", "exec"), namespace)
    assert tuple(namespace["images"].shape) == (16, 1, 32, 32)
    assert float(namespace["images"].abs().max()) <= 1.0
