"""`horseshoe serve`: the page's server in-process on a tiny network, over real HTTP on the loopback.

The run is built in memory (an untrained tiny U-Net with two classes): what is tested is the server,
so no training is needed. Images come back as PNGs enlarged display_scale(16) = 6 times.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import socket
import struct
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from training_helpers import tiny_config

from horseshoe.cli import main
from horseshoe.data.transforms import to_uint8
from horseshoe.diffusion import Denoiser
from horseshoe.models import UNet
from horseshoe.runs.load import LoadedRun, with_precision
from horseshoe.serve.jobs import Worker
from horseshoe.serve.server import make_server
from horseshoe.serve.tasks import Task, parse
from horseshoe.serve.uploads import Limits, RequestError

SIZE, SCALE = 16, 6
LIMITS = Limits(upload_bytes=50_000, pixels=1_000_000, kept=8, queued=8)
SRC = Path(__file__).resolve().parents[1] / "src" / "horseshoe"


def tiny_run(*extra: str) -> LoadedRun:
    """A LoadedRun of the tiny config with random weights, as load_run builds one (fp32, CPU)."""
    config = tiny_config("sample.steps=2", *extra)
    torch.manual_seed(0)
    model = UNet(config.model, config.data.shape).eval().requires_grad_(False)
    for parameter in model.parameters():  # off the zero-initialised output layer, so that a class tells
        parameter.add_(torch.randn_like(parameter) * 0.05)
    cpu = torch.device("cpu")
    denoiser = Denoiser(with_precision(model, cpu, "fp32"), config.diffusion.make_schedule(),
                        config.diffusion.prediction)
    return LoadedRun(config, model, denoiser, Path("tiny"), 0, cpu, "fp32")


@pytest.fixture(scope="module")
def run():
    return tiny_run("data.classes=['ring','bar']", "model.num_classes=2")


@pytest.fixture(scope="module")
def server(run):
    server = make_server(run, port=0, limits=LIMITS)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def call(server, path: str, body: object = None, raw: bytes | None = None,
         headers: dict | None = None) -> tuple[int, object]:
    """One request: (status, the JSON answer, or the bytes of the page)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(server.url.rstrip("/") + path, data=data,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            content = answer.read()
            return answer.status, content if path.startswith("/?") or path == "/" else json.loads(content)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def job(server, kind: str, body: dict) -> dict:
    """Post a job and poll it to the end, as the page does."""
    status, answer = call(server, f"/api/{kind}", body)
    assert status == 202, answer
    deadline, done = time.monotonic() + 60, -1
    while time.monotonic() < deadline:
        status, state = call(server, f"/api/job/{answer['job']}?after={done}")  # held until a step beyond
        assert status == 200 and state["done"] <= state["total"] == answer["total"]
        if state["state"] not in ("queued", "running"):
            return state
        done = state["done"]
    raise AssertionError(f"job {answer['job']} did not finish")


def pixels(url: str) -> np.ndarray:
    """A PNG data URL -> uint8 (H, W) at the run's size (one pixel of each SCALE x SCALE block)."""
    assert url.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
        assert image.format == "PNG" and image.size == (SIZE * SCALE, SIZE * SCALE)
        return np.asarray(image)[::SCALE, ::SCALE]


def png_url(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def drawing() -> np.ndarray:
    """A white U on black, 64 x 64 RGB: what the page's canvas sends."""
    array = np.zeros((64, 64, 3), np.uint8)
    array[12:52, 16:24] = array[12:52, 40:48] = array[44:52, 16:48] = 255
    return array


def png_claiming(width: int, height: int) -> str:
    """A 1x1 PNG whose header claims width x height: a decompression bomb's shape, in 70 bytes."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR's width and height, after the signature
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # the chunk's CRC over type and data
    return "data:image/png;base64," + base64.b64encode(bytes(data)).decode()


def test_the_page_and_the_run_info_load_from_the_loopback(server):
    assert server.server_address[0] == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")
    status, page = call(server, "/?selftest=1")  # its load time is measured by benchmarks/serve_time.py
    info = call(server, "/api/info")[1]
    assert status == 200 and b'<canvas id="draw"' in page and b"/api/job/" in page
    assert info["classes"] == ["ring", "bar"] and info["height"] == SIZE and info["steps"] == 2
    assert "ddim" in info["samplers"] and "consistency" not in info["samplers"]  # the few-step one: students only
    assert info["sampler"] == "dpmpp_2m_sde" and info["interpolate_sampler"] == "ddim"
    status, answer = call(server, "/api/info", headers={"Host": "attacker.example:80"})
    assert status == 403 and "loopback" in answer["error"]  # a rebound name is refused


def test_sample_returns_a_grid_of_images_and_a_class_changes_them(server):
    plain = job(server, "sample", {"count": 3, "seed": 5})
    assert plain["state"] == "done" and plain["done"] == plain["total"] == 2 and len(plain["images"]) == 3
    assert 0 < plain["seconds"] < 10  # the model's own time, which the page shows
    ring = job(server, "sample", {"count": 3, "seed": 5, "class": "ring", "guidance": 3.0})
    assert len(ring["images"]) == 3
    assert not np.array_equal(pixels(plain["images"][0]), pixels(ring["images"][0]))


def test_edit_turns_a_drawing_into_eight_images(server, run, tmp_path):
    Image.fromarray(drawing()).save(tmp_path / "drawing.png")
    answer = job(server, "edit", {"image": png_url(drawing()), "strength": 0.5, "count": 8, "steps": 4})
    assert answer["state"] == "done" and len(answer["images"]) == 8 and answer["total"] == 2
    fitted = to_uint8(run.load_image(tmp_path / "drawing.png"))[0, ..., 0]  # as the CLI fits a file
    assert np.array_equal(pixels(answer["inputs"][0]), fitted)


def test_inpaint_fills_the_brushed_part_and_keeps_the_rest(server, run, tmp_path):
    rng = np.random.default_rng(0)
    image = (rng.random((40, 40)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "image.png")
    mask = np.zeros((40, 40), np.uint8)
    mask[:, :20] = 255  # the left half is to fill
    answer = job(server, "inpaint", {"image": png_url(image), "mask": png_url(mask), "count": 4, "resample": 2})
    assert answer["state"] == "done" and answer["total"] == 3  # 2 steps, the first taken twice
    fitted = to_uint8(run.load_image(tmp_path / "image.png"))[0, ..., 0]
    for url in answer["images"]:
        assert np.array_equal(pixels(url)[:, SIZE // 2:], fitted[:, SIZE // 2:])
    assert not np.array_equal(pixels(answer["images"][0])[:, : SIZE // 2], fitted[:, : SIZE // 2])


def test_interpolation_runs_from_one_seed_to_the_other(server):
    path = job(server, "interpolate", {"seeds": [3, 9], "count": 5, "sampler": "ddim", "steps": 3})
    assert len(path["images"]) == 5
    ends = [job(server, "sample", {"seed": seed, "count": 1, "sampler": "ddim", "steps": 3}) for seed in (3, 9)]
    for image, end in ((path["images"][0], ends[0]), (path["images"][-1], ends[1])):
        gap = np.abs(pixels(image).astype(int) - pixels(end["images"][0]).astype(int)).max()
        assert gap <= 1  # the same noise and deterministic steps (one grey level: batch arithmetic)


BAD = {
    "non-image upload": ("edit", {"image": "data:image/png;base64," + base64.b64encode(b"#!/bin/sh\n").decode()},
                         400, "not an image"),
    "too large upload": ("edit", {"image": png_url((np.random.default_rng(1).random((300, 300)) * 255)
                                                   .astype(np.uint8))}, 413, "over the limit of 50,000"),
    "bomb dimensions": ("edit", {"image": png_claiming(30000, 30000)}, 413, "decompression bomb"),
    "not base64": ("edit", {"image": "data:image/png;base64,@@@"}, 400, "not valid base64"),
    "mask of another size": ("inpaint", {"image": png_url(drawing()), "mask": png_url(np.zeros((8, 8), np.uint8))},
                             400, "brush the mask at the image's size"),
    "empty mask": ("inpaint", {"image": png_url(drawing()), "mask": png_url(np.zeros((64, 64), np.uint8))},
                   400, "no pixel is marked"),
    "unknown class": ("sample", {"class": "horse"}, 400, "unknown class 'horse'; this run's classes are ring, bar"),
    "steps out of range": ("sample", {"steps": 1001}, 400, "steps must lie in [1, 1000], got 1001"),
    "too many images": ("sample", {"count": 65}, 400, "count must lie in [1, 64]"),
    "unknown sampler": ("sample", {"sampler": "euler"}, 400, "sampler 'euler' does not suit this run"),
    "a student's sampler": ("sample", {"sampler": "consistency"}, 400, "does not suit this run; choose one of ddpm"),
    "unknown field": ("sample", {"path": "/etc/passwd"}, 400, "unknown field 'path'"),
    "guidance without class": ("sample", {"guidance": 2}, 400, "guidance needs a class"),
    "a string for a number": ("sample", {"count": "8"}, 400, "count: expected a whole number"),
    "one seed": ("interpolate", {"seeds": [1]}, 400, "seeds: expected two whole numbers"),
    "zero strength": ("edit", {"image": png_url(drawing()), "strength": 0}, 400, "strength must be above 0"),
    "unknown kind": ("train", {}, 404, "not found"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_bad_request_is_an_error_and_the_server_answers_after(server, case):
    kind, body, status, message = BAD[case]
    code, answer = call(server, f"/api/{kind}", body)
    assert code == status and message in answer["error"], answer
    assert job(server, "sample", {"count": 1, "steps": 1})["state"] == "done"


@pytest.mark.parametrize("path", ["/../etc/passwd", "/page.html", "/api/job/../../etc/passwd", "/%2e%2e/etc/passwd",
                                  "/api/job/0123456789abcdef"])
def test_no_path_reaches_the_disk(server, path):
    status, answer = call(server, path)
    assert status == 404 and "root:" not in json.dumps(answer)


def test_malformed_posts_are_refused(server):
    assert call(server, "/api/sample", raw=b"{not json")[0] == 400
    assert call(server, "/api/sample", raw=b"{}", headers={"Content-Type": "text/plain"})[0] == 415
    status, answer = call(server, "/api/sample", raw=b" " * (LIMITS.body_bytes + 1))
    assert status == 413 and "over the limit" in answer["error"]
    finished = call(server, "/api/sample", {"count": 1, "steps": 1})[1]["job"]
    status, answer = call(server, f"/api/job/{finished}?after=x")
    assert status == 400 and "after: expected a number of steps" in answer["error"]


def test_a_run_without_classes_refuses_a_class():
    with pytest.raises(RequestError, match="trained without classes"):
        parse(tiny_run(), "sample", {"class": "ring"}, LIMITS)


def test_the_queue_runs_one_job_at_a_time_refuses_more_than_it_holds_and_survives_a_crash():
    release, seen = threading.Event(), []

    def work(what):
        def records():
            seen.append(what)
            release.wait(10)
            if what == "crash":
                raise RuntimeError("boom")
            yield from ()
        return records

    worker = Worker(Limits(queued=1))
    first = worker.submit(Task("sample", 1, work("crash")))
    while first.state != "running":
        time.sleep(0.001)
    second = worker.submit(Task("sample", 1, work("second")))
    with pytest.raises(RequestError, match="busy") as busy:
        worker.submit(Task("sample", 1, work("third")))
    assert busy.value.status == 503 and seen == ["crash"]  # the second waits while the first runs
    release.set()
    while second.state in ("queued", "running"):
        time.sleep(0.001)
    worker.stop()
    assert first.view()["error"] == "internal error: RuntimeError: boom" and first.state == "failed"
    assert second.view()["error"] == "the sampler took no step" and seen == ["crash", "second"]


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


def test_a_hundred_requests_in_a_row_leave_memory_flat(server):
    for seed in range(20):  # warm up: caches, and the store of finished jobs filled to Limits.kept
        job(server, "sample", {"seed": seed, "count": 1, "steps": 1})
    tracemalloc.start()
    before, rss = tracemalloc.get_traced_memory()[0], rss_bytes()
    for seed in range(100):
        assert job(server, "sample", {"seed": seed, "count": 1, "steps": 1})["state"] == "done"
    grown, rss_grown = tracemalloc.get_traced_memory()[0] - before, rss_bytes() - rss
    tracemalloc.stop()
    assert len(server.worker.jobs) <= LIMITS.kept
    assert grown < 256 * 1024, f"Python objects grew {grown:,} bytes over 100 requests"
    assert rss_grown < 16 * 2**20, f"the process grew {rss_grown:,} bytes over 100 requests"


def test_the_command_prints_the_url_warns_off_the_loopback_and_stops_on_ctrl_c(monkeypatch, capsys):
    import horseshoe.cli.serve_cmd as serve_cmd
    from horseshoe.serve.server import PlayServer

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(serve_cmd, "open_run", lambda args: tiny_run())
    monkeypatch.setattr(PlayServer, "serve_forever", interrupted)
    assert main(["serve", "runs/any", "--port", "0"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("serving tiny at http://127.0.0.1:") and "stopped" in out and err == ""
    assert main(["serve", "runs/any", "--port", "0", "--host", "0.0.0.0"]) == 0
    assert capsys.readouterr().err.strip().splitlines() == [
        "horseshoe: warning: --host 0.0.0.0: the page is reachable from other machines, without a password"]


def test_the_command_names_a_missing_run_or_a_port_in_use_in_one_line(tmp_path, capsys, monkeypatch):
    assert main(["serve", str(tmp_path / "nothing"), "--port", "0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    import horseshoe.cli.serve_cmd as serve_cmd

    monkeypatch.setattr(serve_cmd, "open_run", lambda args: tiny_run())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "runs/any", "--port", str(port)]) == 2
    assert capsys.readouterr().err == (f"horseshoe: error: --host 127.0.0.1 --port {port}: cannot listen there "
                                       "(Address already in use)\n")


def test_only_the_serve_command_imports_the_server_and_only_when_it_runs():
    for path in SRC.rglob("*.py"):
        if path.relative_to(SRC).parts[0] != "serve" and path.name != "serve_cmd.py":
            assert "horseshoe.serve" not in path.read_text() and "import serve" not in path.read_text(), path
    module = ast.parse((SRC / "cli" / "serve_cmd.py").read_text())
    on_top = [node for node in module.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert not any("horseshoe.serve" in (getattr(node, "module", "") or "") for node in on_top)
