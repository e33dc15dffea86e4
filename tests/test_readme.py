"""The README's Python quick start must really run."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs():
    text = README.read_text()
    block = re.search(r"## Quick start.*?```python\n(.*?)```", text, re.S)
    assert block, "README has no Python quick start"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) <= 8
    namespace: dict = {}
    exec(compile(block.group(1), "README quick start", "exec"), namespace)
    assert "images" in namespace or "run" in namespace
