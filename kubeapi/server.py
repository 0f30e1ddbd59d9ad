"""The aiohttp application, a runner on a background thread for tests, and the kubeconfig.

HTTPS on 127.0.0.1 with a throwaway CA, and bearer tokens checked on every request (see
:mod:`.auth`): kubectl and the python client use the kubeconfig as they would a cluster's, and
pods use their mounted service-account token, as in a cluster.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from . import discovery
from .auth import Credentials
from .controllers import Controllers
from .handlers import NOT_SERVED, USER, RestHandlers, respond
from .status import ApiError
from .kubelet import Kubelet
from .operations import Cluster
from .resources import find
from .store import Store

@dataclass
class Options:
    # events the store keeps for watches to resume from; a watch from before them gets 410 Gone
    watch_window: int = 10_000
    # how often an idle watch that allows bookmarks gets one
    bookmark_interval: float = 5.0
    # run pods as Docker containers (else pods stay Pending, as with no node)
    run_pods: bool = True
    # seconds before a failed Job pod is replaced, doubling (a real cluster starts at 10)
    job_backoff: float = 1.0


def build(options: Options, credentials: Credentials) -> tuple[web.Application, Cluster, Kubelet | None]:
    """The application; call from a running event loop (the controllers start on it)."""
    store = Store(window=options.watch_window)
    cluster = Cluster(store)
    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_authenticate(credentials)])
    kubelet = None
    if options.run_pods:
        import docker

        kubelet = Kubelet(cluster, docker.from_env(timeout=120), uuid.uuid4().hex[:12], credentials)
        app.on_cleanup.append(lambda _app: asyncio.to_thread(kubelet.remove_all))
    controllers = Controllers(cluster, job_backoff=options.job_backoff, ca_pem=credentials.ca_pem)
    controllers.start()
    app.on_cleanup.append(lambda _app: controllers.stop())
    handlers = RestHandlers(cluster, kubelet, options.bookmark_interval, credentials)
    discovery.add_routes(app)
    app.router.add_route("*", "/api/{tail:.+}", handlers.core)
    app.router.add_route("*", "/apis/{tail:.+}", handlers.grouped)
    app.router.add_route("*", "/{tail:.*}", _not_served)
    _bootstrap(cluster)
    return app, cluster, kubelet


def _authenticate(credentials: Credentials) -> Any:
    @web.middleware
    async def authenticate(request: web.Request, handler: Any) -> web.StreamResponse:
        user = credentials.user(request.headers.get("Authorization"))
        if user is None:
            return respond(ApiError(401, "Unauthorized", "Unauthorized").body(), 401)
        request[USER] = user  # for SelfSubjectReview (kubectl auth whoami)
        return await handler(request)

    return authenticate


async def _not_served(request: web.Request) -> web.Response:
    return respond(NOT_SERVED.body(), 404)


def _bootstrap(cluster: Cluster, port: int = 6443) -> None:
    """The namespaces every cluster has, and the ``kubernetes`` Service of the default one."""
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        cluster.create(find("", "v1", "namespaces"), None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    cluster.create(find("", "v1", "services"), "default", {"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}}, "spec": {
        "clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}})


def kubeconfig(url: str, credentials: Credentials, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "orcakit-kubeapi", "cluster": {
            "server": url, "certificate-authority-data": base64.b64encode(credentials.ca_pem).decode()}}],
        "users": [{"name": "orcakit", "user": {"token": credentials.admin_token}}],
        "contexts": [{"name": "orcakit-kubeapi", "context": {"cluster": "orcakit-kubeapi", "user": "orcakit", "namespace": namespace}}],
        "current-context": "orcakit-kubeapi",
    }


def write_kubeconfig(path: Path, url: str, credentials: Credentials, namespace: str = "default") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig(url, credentials, namespace), sort_keys=False))
    path.chmod(0o600)  # it holds the admin token
    return path


#: Seconds stop() waits for the server's cleanup (its containers removed) before giving up.
STOP_TIMEOUT = 600


class ServerThread:
    """The server on its own event loop in a daemon thread: ``start()`` returns the URL."""

    def __init__(self, options: Options | None = None, port: int = 0) -> None:
        self.options = options or Options()
        self.port = port
        self.url = ""
        self.credentials = Credentials()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kubeapi", daemon=True)
        self._runner: web.AppRunner | None = None
        self.cluster: Cluster | None = None

    def start(self) -> str:
        self._thread.start()
        if not self._ready.wait(30) or not self.url:
            # what stopped it (no Docker engine, a port in use...), not a bare timeout
            raise RuntimeError(f"the Kubernetes API environment did not start: {self._failure or 'no answer within 30 s'}")
        return self.url

    _failure: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except Exception as exc:  # noqa: BLE001 - reported by start(), in the caller's thread
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    async def _serve(self) -> None:
        app, self.cluster, kubelet = build(self.options, self.credentials)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.credentials.server_context())
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"https://127.0.0.1:{port}"
        if kubelet is not None:
            kubelet.api_port = port

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        return write_kubeconfig(path, self.url, self.credentials, namespace)

    def call(self, function: Any, *args: Any) -> Any:
        """Run ``function(*args)`` on the server's loop (the store is not thread-safe)."""
        async def invoke() -> Any:
            return function(*args)
        return asyncio.run_coroutine_threadsafe(invoke(), self.loop).result(30)

    def stop(self) -> None:
        if self._runner is not None:
            # the cleanup removes every container the server started: its time follows the
            # engine's load, so the wait is bounded only against a hung engine
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(STOP_TIMEOUT)

        async def cancel_the_rest() -> None:  # open watches and log streams: ended, not destroyed pending
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=5) if tasks else None

        asyncio.run_coroutine_threadsafe(cancel_the_rest(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        shutil.rmtree(self.credentials.folder, ignore_errors=True)
