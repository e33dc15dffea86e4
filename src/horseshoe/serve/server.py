"""The HTTP side: a fixed table of routes over one loaded run, answered in JSON (and the page itself).

    GET  /                 the page (page.html)
    GET  /api/info         the run: image shape, classes, samplers, its default sampler and steps, limits
    POST /api/<kind>       sample, edit, inpaint or interpolate: 202 and a job id, or 400/413/503 and why
    GET  /api/job/<id>     the job's state and steps done; once done, its images (?after=N: held open until
                           a step beyond N is done, or a second)

No route reads or writes a file: the page is read once at start, the run is the one given at start, and
a path outside the table is a 404 whatever it holds (`/../etc/passwd` included).
"""

from __future__ import annotations

import json
import logging
import re
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import SplitResult, parse_qs, urlsplit

from horseshoe.runs.load import LoadedRun
from horseshoe.sampling import sampler_timesteps
from horseshoe.serve.jobs import Worker
from horseshoe.serve.tasks import GUIDANCE_MAX, STOCHASTIC, TASKS, parse, suited_samplers
from horseshoe.serve.uploads import Limits, RequestError

log = logging.getLogger(__name__)
JOB_PATH = re.compile(r"^/api/job/([0-9a-f]{16})$")
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
DRAIN_BYTES = 64 * 2**20
HOLD_SECONDS = 1.0  # the longest a poll is held open
# The page's own script and style are inline; images come back as data: URLs; nothing else loads.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                               "img-src data: blob:; connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class PlayServer(ThreadingHTTPServer):
    """A threading HTTP server that holds the run, the page, the limits and the job worker."""

    daemon_threads = True  # a stuck client never keeps the process alive

    def __init__(self, address: tuple[str, int], run: LoadedRun, limits: Limits) -> None:
        if ":" in address[0]:  # an IPv6 address such as ::1
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        self.run, self.limits = run, limits
        self.page = resources.files("horseshoe.serve").joinpath("page.html").read_bytes()
        self.info = run_info(run, limits)
        self.worker = Worker(limits)

    @property
    def url(self) -> str:
        """Where a browser on this machine opens the page."""
        host, port = self.server_address[:2]
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
        return f"http://{host}:{port}/"

    def server_close(self) -> None:
        super().server_close()
        if hasattr(self, "worker"):  # socketserver closes a server whose bind failed, before it has one
            self.worker.stop()


def run_info(run: LoadedRun, limits: Limits) -> dict:
    """What the page needs to build its controls: the run's shape, classes, samplers and defaults."""
    config = run.sampler()  # the run's own (a distilled run's few-step sampler, where it has one)
    channels, height, width = run.image_shape
    return {
        "run": run.run_dir.name, "step": run.step, "channels": channels, "height": height, "width": width,
        "classes": list(run.classes), "samplers": list(suited_samplers(run)), "sampler": config.sampler,
        "steps": len(sampler_timesteps(run.denoiser.schedule, config)), "max_steps": run.denoiser.schedule.num_steps,
        # an interpolation is smooth only where every image gets the same noise: the run's sampler, unless it
        # adds fresh noise per image, then DDIM (at eta 0)
        "interpolate_sampler": "ddim" if config.sampler in STOCHASTIC else config.sampler,
        "guidance": config.guidance, "max_guidance": GUIDANCE_MAX, "max_count": limits.count,
        "max_resample": limits.resample, "upload_bytes": limits.upload_bytes, "pixels": limits.pixels,
    }


class Handler(BaseHTTPRequestHandler):
    """One request: routed by exact path, answered in JSON; any RequestError becomes its status and message."""

    server: PlayServer
    server_version = "horseshoe-serve"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._answer(self._post)

    def _answer(self, route) -> None:
        self.unread = 0
        try:
            self._check_host()
            route(urlsplit(self.path))
        except RequestError as error:
            self._json({"error": str(error)}, error.status)
        except Exception as error:  # noqa: BLE001 - one bad request never takes the server down
            log.exception("request %s %s failed", self.command, self.path)
            self._json({"error": f"internal error: {type(error).__name__}: {error}"}, 500)
        self._drain()

    def _drain(self) -> None:
        """Read and drop a refused body (up to DRAIN_BYTES), so that closing does not reset the connection
        before the client has read why; a larger one is cut off."""
        self.close_connection = self.close_connection or self.unread > 0
        left = min(self.unread, DRAIN_BYTES)
        while left > 0 and (chunk := self.rfile.read(min(left, 65536))):
            left -= len(chunk)

    def _get(self, url: SplitResult) -> None:
        path = url.path
        if path == "/":
            self._send(self.server.page, "text/html; charset=utf-8")
        elif path == "/api/info":
            self._json(self.server.info)
        elif found := JOB_PATH.match(path):
            job = self.server.worker.get(found.group(1))
            if job is None:
                raise RequestError("no such job (finished jobs are kept for a while only)", 404)
            after = parse_qs(url.query).get("after", [None])[0]
            if after is not None:  # held open until a step beyond `after` is done (Job.wait)
                if not after.lstrip("-").isdigit():
                    raise RequestError(f"after: expected a number of steps, got {after[:50]!r}")
                job.wait(int(after), HOLD_SECONDS)
            self._json(job.view())
        else:
            raise RequestError(f"not found: {path[:200]}", 404)

    def _post(self, url: SplitResult) -> None:
        path = url.path
        kind = path.removeprefix("/api/")
        if not path.startswith("/api/") or kind not in TASKS:
            raise RequestError(f"not found: {path[:200]}", 404)
        if self.headers.get_content_type() != "application/json":  # a cross-site form cannot send JSON unasked
            raise RequestError("send the request as application/json", 415)
        task = parse(self.server.run, kind, self._body(), self.server.limits)
        job = self.server.worker.submit(task)
        self._json({"job": job.id, "total": task.total}, 202)

    def _body(self) -> object:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise RequestError("a request body needs a Content-Length", 411)
        if int(length) > self.server.limits.body_bytes:
            self.unread = int(length)  # drained after the answer (see _answer), never parsed
            raise RequestError(f"the request is {int(length):,} bytes, over the limit of "
                               f"{self.server.limits.body_bytes:,}", 413)
        try:
            return json.loads(self.rfile.read(int(length)))
        except (ValueError, UnicodeDecodeError) as error:
            raise RequestError(f"the request is not JSON: {error}") from None

    def _check_host(self) -> None:
        """On the loopback, only a Host of the loopback: a page elsewhere cannot rebind its name to us."""
        if self.server.server_address[0] not in ("127.0.0.1", "::1"):
            return
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        if host not in LOOPBACK:
            raise RequestError(f"host {host[:100]!r} is not this machine's loopback", 403)

    def _json(self, value: object, status: int = 200) -> None:
        self._send(json.dumps(value).encode(), "application/json", status)

    def _send(self, body: bytes, content_type: str, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        """Quiet: a page polls several times a second; errors go to the log instead."""

    def log_error(self, format: str, *args) -> None:  # noqa: A002
        log.debug(format, *args)


def make_server(run: LoadedRun, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None) -> PlayServer:
    """A server for `run` bound to host:port (port 0: any free one), not yet serving: call serve_forever()."""
    return PlayServer((host, port), run, limits or Limits())

