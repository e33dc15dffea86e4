"""`horseshoe serve`: a page in the browser to play with one trained run (horseshoe.serve, loaded only here)."""

from __future__ import annotations

import argparse
import warnings

from horseshoe.cli.common import add_command, add_run_options, add_sample_set_option, open_run

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _port(text: str) -> int:
    """argparse type: a TCP port, 0 for any free one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must lie in [0, 65535], got {value}")
    return value


def register(subparsers) -> None:
    p = add_command(subparsers, "serve",
                    "a page in the browser to play with a trained run: sample, turn a drawing into images, "
                    "inpaint, interpolate",
                    "horseshoe serve runs/demo --port 8000   # then open http://127.0.0.1:8000/")
    p.add_argument("run", help="run directory or checkpoint directory (fixed while the server runs)")
    p.add_argument("--port", type=_port, default=8000, help="port to listen on; 0 = any free port")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but this machine's loopback lets other machines use the page")
    add_run_options(p)
    add_sample_set_option(p)
    p.set_defaults(run_command=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Load the run, listen, print the page's URL in one line, and serve until Ctrl-C."""
    from horseshoe.serve.server import make_server

    run = open_run(args)
    try:
        server = make_server(run, args.host, args.port)
    except OSError as error:  # a port in use, an address not of this machine
        raise ValueError(f"--host {args.host} --port {args.port}: cannot listen there "
                         f"({error.strerror or error})") from None
    if args.host not in LOOPBACK:
        warnings.warn(f"--host {args.host}: the page is reachable from other machines, without a password",
                      stacklevel=1)
    print(f"serving {run.checkpoint} at {server.url} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
    return 0
