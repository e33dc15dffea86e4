"""The time-to-quality records of benchmarks/quality.py as tables (Markdown) and curves (PNG).

A record is one system's run: its evaluation points (training seconds, images seen, 'good' share,
SWD x1e3, and for the digits how many of the ten are covered), how it stopped, and its final-sampler
points. A threshold counts as reached at the first evaluation at or above it (so its time is known to
within the time between two evaluations); SWD at a given time is interpolated linearly between the evaluations around
it, is the last value once a recipe has ended (the model no longer changes), and is not reached past
a training budget that ran out.
"""

from __future__ import annotations

from pathlib import Path

PEERS = ("diffusers", "lucidrains")
THRESHOLDS = (0.8, 0.9, 0.95)
SWD_MINUTES = (2.5, 5.0, 10.0, 20.0)
ALL_DIGITS = 10


def reached(point: dict, threshold: float) -> bool:
    """The good share is at the threshold (and, for the digits, all ten digits are among the recognised)."""
    return point["good"] >= threshold and point.get("covered", ALL_DIGITS) >= ALL_DIGITS


def time_to(record: dict, threshold: float) -> dict | None:
    """The first evaluation point that reached the threshold, or None."""
    return next((p for p in record.get("points", []) if reached(p, threshold)), None)


def value_at(record: dict, seconds: float, key: str = "swd") -> float | None:
    """`key` at `seconds` of training: interpolated, the final value after the recipe ended, else None."""
    points = record.get("points", [])
    if not points or seconds < points[0]["seconds"]:
        return None
    if seconds > points[-1]["seconds"]:
        return points[-1][key] if record.get("stopped") == "recipe done" else None
    for a, b in zip(points, points[1:], strict=False):
        if a["seconds"] <= seconds <= b["seconds"]:
            span = b["seconds"] - a["seconds"]
            w = (seconds - a["seconds"]) / span if span > 0 else 1.0
            return a[key] + w * (b[key] - a[key])
    return points[-1][key]  # seconds equals the only point


def sooner(records: list[dict], record: dict, threshold: float) -> tuple[float, bool] | None:
    """(best peer's time / this system's time, exact), exact False when no peer reached it: then the ratio
    is a lower bound from the longest peer's training time. None when this system did not reach it."""
    own = time_to(record, threshold)
    if own is None:
        return None
    peers = [r for r in records if r["system"] in PEERS and "error" not in r]
    times = [p["seconds"] for p in (time_to(r, threshold) for r in peers) if p is not None]
    if times:
        return min(times) / own["seconds"], True
    longest = max((r["trained_seconds"] for r in peers), default=None)
    return (longest / own["seconds"], False) if longest else None


def _ok(records: list[dict]) -> list[dict]:
    return [r for r in records if "error" not in r]


def _images(n: int) -> str:
    return f"{n / 1000:.0f}k" if n >= 10_000 else f"{n / 1000:.1f}k"


def _summary_rows(records: list[dict]) -> list[str]:
    rows = ["| system | precision | parameters | batch | images/s | trained | stopped | sampler (each evaluation) |",
            "|---|---|---|---|---|---|---|---|"]
    for r in records:
        if "error" in r:
            rows.append(f"| {r['system']} | failed: {r['error']} | | | | | | |")
            continue
        rows.append(f"| {r['system']} | {r['precision']} | {r['parameters'] / 1e6:.1f}M | {r['batch_size']} | "
                    f"{r['images_per_sec']:.1f} | {r['trained_seconds'] / 60:.2f} min, {r['steps']} steps, "
                    f"{_images(r['images'])} images | {r['stopped']} | {r['eval_sampler']} |")
    return rows


def _threshold_rows(records: list[dict]) -> list[str]:
    head = " | ".join(f"{t:.0%}" for t in THRESHOLDS)
    ratios = " | ".join(f"{t:.0%}: x sooner than the best peer" for t in THRESHOLDS)
    rows = [f"| system | {head} | {ratios} |", "|---|" + "---|" * (2 * len(THRESHOLDS))]
    for r in _ok(records):
        cells = []
        for t in THRESHOLDS:
            p = time_to(r, t)
            cells.append("not reached" if p is None else f"{p['seconds'] / 60:.2f} min ({_images(p['images'])})")
        for t in THRESHOLDS:
            s = sooner(records, r, t)
            cells.append("–" if s is None else f"{s[0]:.2f}x" if s[1] else f"> {s[0]:.2f}x (no peer reached it)")
        rows.append(f"| {r['system']} | " + " | ".join(cells) + " |")
    return rows


def _swd_rows(records: list[dict]) -> list[str]:
    rows = ["| system | " + " | ".join(f"{m:g} min" for m in SWD_MINUTES) + " |", "|---|" + "---|" * len(SWD_MINUTES)]
    ok = _ok(records)
    for r in ok:
        cells = []
        for m in SWD_MINUTES:
            v = value_at(r, 60 * m)
            cells.append("not reached" if v is None else f"{v:.1f}")
        rows.append(f"| {r['system']} | " + " | ".join(cells) + " |")
    for r in ok:
        if r["system"] in PEERS:
            continue
        cells = []
        for m in SWD_MINUTES:
            own = value_at(r, 60 * m)
            peers = [v for v in (value_at(p, 60 * m) for p in ok if p["system"] in PEERS) if v is not None]
            cells.append("–" if own is None or not peers else f"{min(peers) / own:.2f}x")
        rows.append(f"| best peer / {r['system']} | " + " | ".join(cells) + " |")
    return rows


def _final_rows(records: list[dict], digits: bool) -> list[str]:
    extra = " covered | evenness |" if digits else ""
    rows = [f"| system | sampler | samples | at | good | SWD x1e3 |{extra}", "|---|---|---|---|---|---|"
            + ("---|---|" if digits else "")]
    for r in _ok(records):
        for p in r["points"][-1:] + r.get("final", []):
            more = f" {p['covered']} | {p['evenness'] + 0.0:.2f} |" if digits else ""  # + 0.0: no -0.00
            rows.append(f"| {r['system']} | {p['sampler']} | {p['samples']} | {p['seconds'] / 60:.2f} min | "
                        f"{p['good']:.1%} | {p['swd']:.1f} |{more}")
    return rows


def markdown(meta: dict, records: list[dict], picture: str) -> str:
    digits = meta["data"] == "digits"
    good = ("recognised digits (confidence >= 0.9) with all ten covered" if digits
            else "valid horseshoes (metrics/shape.py)")
    ok = _ok(records)
    floor = ok[0]["floor"] if ok else None
    real = (f"Real images score SWD {floor['swd']:.1f} and {floor['good']:.1%} good: a perfect model's values."
            if floor else "")
    at = meta.get("at_minutes")
    when = (f"at {', '.join(f'{m:g}' for m in at)} min" if at else f"every {meta['interval_seconds']:g} s")
    peers = meta.get("peer_samples", meta["samples"])
    samples = f"{meta['samples']} samples" + (f" (the peers: {peers})" if peers != meta["samples"] else "")
    lines = [f"# Time to quality: {meta['data']}, {meta['date']}", "",
             f"Each system trained up to {meta['minutes']:g} min (training time only), evaluated {when} "
             f"of training and at its end, with {samples} from its EMA weights; "
             f"precision: {meta['precision']}. {meta['machine']}, {ok[0]['device'] if ok else '?'}, "
             f"{ok[0]['threads'] if ok else '?'} threads.", "", *_summary_rows(records), "",
             f"## Minutes (training images) to {good}", "",
             "The first evaluation at or above the share: known to within the time between two evaluations.", "",
             *_threshold_rows(records), "", "## SWD x1e3 at minutes of training (lower is better)", "",
             f"Interpolated between evaluations; past a recipe's end, its final value. {real}", "",
             *_swd_rows(records), "", "## At the end", "", *_final_rows(records, digits), ""]
    if meta.get("final_samples") and any(r.get("final") for r in ok):
        lines += [f"diffusers' default pipeline (DDPM, 1000 steps) was drawn only at the end, with "
                  f"{meta['final_samples']} samples (SWD from fewer samples reads higher).", ""]
    lines += [f"![quality against training time]({picture})", ""]
    return "\n".join(lines)


def plot(meta: dict, records: list[dict], path: Path) -> Path:
    """The good share and SWD against minutes of training, one line per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in _ok(records):
        minutes = [p["seconds"] / 60 for p in r["points"]]
        line, = left.plot(minutes, [100 * p["good"] for p in r["points"]], marker=".", label=r["system"])
        right.plot(minutes, [p["swd"] for p in r["points"]], marker=".", color=line.get_color(),
                   label=f"{r['system']} ({r['eval_sampler']})")
        for p in r.get("final", []):
            left.plot(p["seconds"] / 60, 100 * p["good"], marker="*", ms=11, color=line.get_color(), ls="none")
            right.plot(p["seconds"] / 60, p["swd"], marker="*", ms=11, color=line.get_color(), ls="none",
                       label=f"{r['system']} ({p['sampler']}, {p['samples']} samples)")
    for t in THRESHOLDS:
        left.axhline(100 * t, color="grey", lw=0.6, ls=":")
    ok = _ok(records)
    if ok:
        right.axhline(ok[0]["floor"]["swd"], color="grey", lw=0.8, ls="--", label="real images")
    left.set(xlabel="minutes of training", ylabel="recognised digits (%)" if meta["data"] == "digits"
             else "valid horseshoes (%)", ylim=(0, 100))
    right.set(xlabel="minutes of training", ylabel="SWD x1e3 (log)", yscale="log")
    if ok:  # nothing to label when every system failed
        left.legend(fontsize=8)
        right.legend(fontsize=7)
    fig.suptitle(f"time to quality: {meta['data']}, {meta['date']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
