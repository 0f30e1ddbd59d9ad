"""``orcakit kubeapi`` (also ``python -m orcakit.kubeapi``): start the local Kubernetes API
environment, write its kubeconfig, serve until interrupted.

Only the standard library and click are imported here, so that ``orcakit --help`` can list the
command without the environment's dependencies (the ``kubeapi`` extra) installed.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import click

DEFAULT_KUBECONFIG = Path("~/.kube/orcakit-kubeapi").expanduser()


def serve(port: int, kubeconfig: Path, namespace: str, no_pods: bool, watch_window: int) -> None:
    try:
        from .server import Options, ServerThread
    except ImportError as exc:
        raise click.ClickException(f"the Kubernetes API environment needs its dependencies ({exc.name} is missing): "
                                   "pip install 'orcakit[kubeapi]'") from None
    server = ServerThread(Options(watch_window=watch_window, run_pods=not no_pods), port=port)
    try:
        url = server.start()
    except Exception as exc:  # noqa: BLE001 - no Docker engine, a port in use...: say it and how to fix it
        hint = " (is Docker running? --no-pods serves the API without running pods)" if not no_pods else ""
        raise click.ClickException(f"{' '.join(str(exc).split())[:400]}{hint}") from None
    server.write_kubeconfig(kubeconfig, namespace)
    if namespace not in ("default", "kube-system", "kube-public", "kube-node-lease"):
        from .resources import find

        namespaces = find("", "v1", "namespaces")
        # the context's namespace exists from the start, as `kubectl create namespace` would make it
        try:
            server.call(lambda: server.cluster.create(namespaces, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
        except Exception as exc:  # noqa: BLE001 - an invalid name: the server's own answer says why
            server.stop()
            raise click.ClickException(f"--namespace {namespace}: {exc}") from None
    # stdout: the URL alone on the first line (for scripts); stderr: what to do with it
    print(url, flush=True)
    print(f"orcakit kubeapi: serving {url}; kubeconfig written to {kubeconfig} (context orcakit-kubeapi, namespace {namespace})\n"
          f"  export KUBECONFIG={kubeconfig}\n  kubectl get namespaces\nStop with Ctrl-C.", file=sys.stderr, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


@click.command("kubeapi")
@click.option("--port", type=int, default=0, show_default=True, help="Port on 127.0.0.1 (0 picks a free one).")
@click.option("--kubeconfig", type=click.Path(path_type=Path, dir_okay=False), default=str(DEFAULT_KUBECONFIG), show_default=True,
              help="Where to write the kubeconfig (it holds the admin token: mode 0600).")
@click.option("--namespace", default="default", show_default=True, help="The kubeconfig context's namespace (created if new).")
@click.option("--no-pods", is_flag=True, help="Do not run pods in Docker (they stay Pending, as with no node).")
@click.option("--watch-window", type=int, default=10_000, show_default=True,
              help="Events kept for watches to resume from (older: 410 Gone).")
def command(port: int, kubeconfig: Path, namespace: str, no_pods: bool, watch_window: int) -> None:
    """Start the local Kubernetes API environment (HTTPS API server, controllers, a kubelet
    running pods as Docker containers) and write its kubeconfig."""
    serve(port, kubeconfig, namespace, no_pods, watch_window)


def main() -> None:
    command.main(prog_name=f"{os.path.basename(sys.executable)} -m orcakit.kubeapi")
