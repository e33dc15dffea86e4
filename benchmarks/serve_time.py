"""`horseshoe serve` timed through its HTTP API, as the page calls it: a drawing to 8 images (edit, strength 0.6) and
the page load, for each run given (teacher and student in one process; the median of 7 after one warm-up).

    python benchmarks/serve_time.py runs/teacher runs/teacher-fast
"""

from __future__ import annotations

import base64
import io
import json
import statistics
import sys
import threading
import time
import urllib.request

import numpy as np
from PIL import Image

from horseshoe.runs.load import load_run
from horseshoe.serve.server import make_server


def png_url(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def call(url: str, path: str, body: object = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url.rstrip("/") + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        content = answer.read()
        return content if path == "/" else json.loads(content)


def job(url: str, kind: str, body: dict) -> dict:
    """Post a job and poll it to the end, as the page does."""
    posted, done = call(url, f"/api/{kind}", body), -1
    while True:
        state = call(url, f"/api/job/{posted['job']}?after={done}")
        if state["state"] not in ("queued", "running"):
            return state
        done = state["done"]


def main() -> None:
    drawing = np.zeros((64, 64, 3), np.uint8)  # a white U on black, as the page's canvas sends it
    drawing[12:52, 16:24] = drawing[12:52, 40:48] = drawing[44:52, 16:48] = 255
    for path in sys.argv[1:]:
        run = load_run(path)
        server = make_server(run, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        loads, edits = [], []
        for seed in range(8):
            started = time.perf_counter()
            call(server.url, "/")
            call(server.url, "/api/info")
            loads.append(time.perf_counter() - started)
            started = time.perf_counter()
            state = job(server.url, "edit", {"image": png_url(drawing), "strength": 0.6, "count": 8, "seed": seed})
            edits.append(time.perf_counter() - started)
            assert state["state"] == "done", state
        config = run.sampler()
        print(json.dumps({"run": path, "sampler": config.sampler, "steps": config.steps,
                          "page_load_ms_median": round(1000 * statistics.median(loads[1:]), 1),
                          "edit8_s_median": round(statistics.median(edits[1:]), 3),
                          "edit8_s_range": [round(min(edits[1:]), 3), round(max(edits[1:]), 3)]}), flush=True)
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
