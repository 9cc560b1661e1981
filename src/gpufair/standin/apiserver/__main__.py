"""Run the stand-in API server as its own process.

    python -m gpufair.standin.apiserver [--host 127.0.0.1] [--port 0] [--kubeconfig PATH]
        [--url-file PATH] [--no-kubelet] [--quiet] [--slow-list PLURAL=SECONDS ...]
        [--audit-log PATH] [--rbac PATH]

With ``--port 0`` (the default) the OS picks a free port. When listening, the server writes
its URL to ``--url-file`` and kubeconfigs to ``--kubeconfig`` (the admin's, and one per gpufair
component beside it: see ``kubeconfig.py``; all atomically) and prints
``standin: serving on http://HOST:PORT``. SIGTERM or SIGINT stops it: watches end first, then the
listener closes. Request lines go to stderr (``--quiet`` keeps only warnings).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import pathlib
import signal
import sys

import kmock
import yaml

from gpufair.standin.apiserver import kubeconfig, rbac, server


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="standin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--kubeconfig", type=pathlib.Path, help="write a kubeconfig here")
    parser.add_argument("--url-file", type=pathlib.Path, help="write the server URL here")
    parser.add_argument(
        "--no-kubelet",
        dest="kubelet",
        action="store_false",
        help="leave bound pods Pending (no simulated kubelet)",
    )
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    parser.add_argument(
        "--slow-list",
        action="append",
        default=[],
        type=_slow_list,
        metavar="PLURAL=SECONDS",
        help="answer every LIST of PLURAL (not its watches) SECONDS late (repeatable)",
    )
    parser.add_argument(
        "--audit-log",
        type=pathlib.Path,
        help="append each distinct call (user, RBAC verb, resource...) here as JSON lines",
    )
    parser.add_argument(
        "--rbac",
        type=pathlib.Path,
        help="YAML of Roles, ClusterRoles and bindings (e.g. the rendered chart): refuse the"
        " components' calls they do not allow with 403, as a real API server does",
    )
    parser.add_argument(
        "--bookmark-seconds",
        type=float,
        default=60.0,
        help="seconds between BOOKMARK events on watches that allow them (default 60, as the"
        " real server's watch cache)",
    )
    parser.add_argument(
        "--watch-events",
        type=int,
        default=20_000,
        help="events kept per resource for watches that resume; older versions get 410 Gone",
    )
    return parser.parse_args(argv)


def _slow_list(text: str) -> tuple[str, float]:
    plural, _, seconds = text.partition("=")
    try:
        return plural, float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PLURAL=SECONDS, got {text!r}") from None


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    authorizer = None
    if args.rbac is not None:
        objects = [obj for obj in yaml.safe_load_all(args.rbac.read_text()) if obj]
        authorizer = rbac.Authorizer.from_objects(objects, builtin=rbac.BUILTIN_ROLES)
    standin = server.StandIn(
        kubelet=args.kubelet,
        slow_lists=dict(args.slow_list),
        audit_log=args.audit_log,
        authorizer=authorizer,
        bookmark_seconds=args.bookmark_seconds,
        watch_events=args.watch_events,
    )
    async with standin, kmock.Server(standin, host=args.host, port=args.port or None) as listener:
        url = f"http://{listener.host}:{listener.port}"
        if args.kubeconfig:
            kubeconfig.write(args.kubeconfig, url)
        if args.url_file:
            args.url_file.parent.mkdir(parents=True, exist_ok=True)
            partial = args.url_file.with_name(args.url_file.name + ".partial")
            partial.write_text(url + "\n")
            partial.replace(args.url_file)
        print(f"standin: serving on {url}", flush=True)
        await stop.wait()
        logging.getLogger("standin").info("stopping: closing watches")
        standin.stop_watches()
        await asyncio.sleep(0.2)  # let watch handlers finish their streams
    print("standin: stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
