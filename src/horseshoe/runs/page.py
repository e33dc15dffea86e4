"""The run's index.html: one page with its pictures, numbers and config.

Each part of horseshoe that adds to the page (the demo, evaluate) writes a named section into
RUN/report.json; the page is rendered from all sections, so a later command adds to it without
erasing what an earlier one wrote.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPORT = "report.json"

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
figure { display: inline-block; margin: 0.6em 1em 0.6em 0; vertical-align: top; }
figure img { image-rendering: pixelated; border: 1px solid #ccc; max-width: 100%; }
figcaption { font-size: 0.9em; color: #555; max-width: 520px; }
table { border-collapse: collapse; } td, th { padding: 0.25em 0.8em; border-bottom: 1px solid #eee; text-align: left; }
.classes { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 0.6em 1.2em; }
.class h3 { margin: 0.2em 0; font-size: 1em; } .class img { image-rendering: pixelated; width: 100%; }
.class p { margin: 0; font-size: 0.85em; color: #555; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def figure(src: str, caption: str, width: int | None = None) -> str:
    """An <img> with a caption; src is relative to the run directory."""
    size = f' width="{width}"' if width else ""
    return (f'<figure><a href="{html.escape(src)}"><img src="{html.escape(src)}"{size} alt="{html.escape(caption)}">'
            f"</a><figcaption>{html.escape(caption)}</figcaption></figure>")


def table(rows: dict[str, Any]) -> str:
    """A two-column table of names and values (floats to 4 significant digits)."""
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(fmt(v))}</td></tr>" for k, v in rows.items())
    return f"<table>{body}</table>"


def note(text: str) -> str:
    """A paragraph of plain text (a warning, a remark)."""
    return f"<p>{html.escape(text, quote=False)}</p>"


def preformatted(text: str) -> str:
    return f"<pre>{html.escape(text, quote=False)}</pre>"


@dataclass(frozen=True)
class ClassRow:
    """One class on the page: its name, a picture of its samples (relative to the run directory), short facts."""

    name: str
    picture: str
    facts: tuple[str, ...] = ()


def class_rows(rows: Sequence[ClassRow], caption: str) -> str:
    """A labelled row of samples per class, wrapping into as many columns as the page is wide."""
    cards = "".join(f'<div class="class"><h3>{html.escape(r.name)}</h3><a href="{html.escape(r.picture)}">'
                    f'<img src="{html.escape(r.picture)}" alt="samples of {html.escape(r.name)}"></a>'
                    + "".join(f"<p>{html.escape(fact)}</p>" for fact in r.facts) + "</div>" for r in rows)
    return note(caption) + f'<div class="classes">{cards}</div>'


def run_sections(run_dir: str | Path, samples: str, caption: str, training: dict[str, Any], config_toml: str,
                 commands: list[str], samples_html: str | None = None) -> Path:
    """The sections every run's page has: samples (the picture, or samples_html), training (loss curve and
    numbers), the config as a TOML file one could start from, and the commands to run next."""
    add_section(run_dir, "samples", "Samples", samples_html or figure(samples, caption), order=10)
    add_section(run_dir, "training", "Training",
                figure("loss.png", "training loss per logged step") + table(training), order=30)
    add_section(run_dir, "config", "Config (as a file for --config)", preformatted(config_toml), order=90)
    return add_section(run_dir, "next", "Next", preformatted("\n".join(commands)), order=95)


def millions(count: int) -> str:
    """A parameter count for people: 6.6 M."""
    return f"{count / 1e6:.1f} M"


def add_section(run_dir: str | Path, key: str, title: str, body_html: str, order: int = 50) -> Path:
    """Add or replace section `key` of the run's page and re-render index.html."""
    run_dir = Path(run_dir)
    path = run_dir / REPORT
    sections = json.loads(path.read_text()) if path.exists() else {}
    sections[key] = {"title": title, "html": body_html, "order": order}
    path.write_text(json.dumps(sections, indent=2))
    return render(run_dir)


def render(run_dir: str | Path) -> Path:
    """Write RUN/index.html from RUN/report.json."""
    run_dir = Path(run_dir)
    sections = json.loads((run_dir / REPORT).read_text())
    parts = [f"<h2>{html.escape(s['title'])}</h2>\n{s['html']}"
             for s in sorted(sections.values(), key=lambda s: s["order"])]
    page = (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>horseshoe run {html.escape(run_dir.name)}"
            f"</title><style>{STYLE}</style></head><body>\n<h1>horseshoe run: {html.escape(run_dir.name)}</h1>\n"
            + "\n".join(parts) + "\n</body></html>\n")
    out = run_dir / "index.html"
    out.write_text(page)
    return out
