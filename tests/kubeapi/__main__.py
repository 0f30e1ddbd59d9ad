"""``python -m tests.kubeapi --port 0 --kubeconfig OUT``: serve until interrupted; prints the URL."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from .server import Options, ServerThread


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.kubeapi", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for the server here")
    parser.add_argument("--namespace", default="default", help="the kubeconfig context's namespace")
    parser.add_argument("--watch-window", type=int, default=Options.watch_window, help="events kept for watches (older: 410 Gone)")
    parser.add_argument("--no-pods", action="store_true", help="do not run pods in Docker (they stay Pending)")
    args = parser.parse_args()
    server = ServerThread(Options(watch_window=args.watch_window, run_pods=not args.no_pods), port=args.port)
    url = server.start()
    if args.kubeconfig:
        server.write_kubeconfig(args.kubeconfig, args.namespace)
    print(url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
