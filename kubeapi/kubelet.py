"""Pods that really run: a kubelet for one node, each pod container a Docker container.

A new pod is bound to the node (``spec.nodeName``), its containers are created with their image,
``command``/``args`` (Docker's entrypoint/cmd), ``env`` (values, ``secretKeyRef``,
``configMapKeyRef``, ``fieldRef``, ``envFrom``) and CPU/memory limits (``nano_cpus``/``mem_limit``),
on the host network so that steps reach PostgreSQL and moto S3 on loopback. Status follows as a
kubelet reports it: Pending → Running → Succeeded/Failed, ``containerStatuses`` with
``state.terminated.exitCode`` and ``reason`` Completed/Error/OOMKilled, restarts per
``restartPolicy``. A gracefully deleted pod has its containers stopped, then leaves the store.
A pod's hostname is its name. Images the engine lacks are pulled (Pulling/Pulled events); the
events a kubelet records (Pulled, Created, Started, Killing, BackOff, Failed) are recorded with
the container's ``fieldPath``, and the scheduler's Scheduled for the binding.
Docker calls block, so they run in threads; every status write goes through the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any, AsyncIterator

from .auth import SERVICE_ACCOUNT_DIR, Credentials
from .operations import Cluster, now
from .resources import find
from .store import Event

NODE = "orcakit-node"
PODS = find("", "v1", "pods")
LABEL = "io.orcakit.kubeapi"
_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60, "m": 1e-3}


def quantity(text: Any) -> float:
    match = re.fullmatch(r"([+-]?[0-9.]+)(e[0-9]+|[a-zA-Z]*)", str(text))
    if not match:
        raise ValueError(f"not a quantity: {text}")
    number, suffix = match.groups()
    if suffix.startswith("e"):
        return float(number) * 10 ** int(suffix[1:])
    return float(number) * _UNITS[suffix]


class ImagePullError(Exception):
    """The engine could not pull a pod's image (ErrImagePull)."""


class ConfigError(Exception):
    """What makes a container CreateContainerConfigError (a missing secret or key)."""


class MountError(Exception):
    """A volume the kubelet cannot set up (a hostPath that fails its type check): the pod stays
    ContainerCreating with a FailedMount event, as on a node."""


#: hostPath ``type`` -> the check a kubelet makes before mounting (pkg/volume/hostpath: an empty
#: type checks nothing; ``*OrCreate`` creates what is missing).
_HOST_PATH_CHECKS = {"Directory": ("is_dir", "directory"), "File": ("is_file", "file"), "Socket": ("is_socket", "socket"),
                     "CharDevice": ("is_char_device", "character device"), "BlockDevice": ("is_block_device", "block device")}


class Kubelet:
    def __init__(self, cluster: Cluster, docker_client: Any, server_id: str, credentials: Credentials) -> None:
        self.cluster = cluster
        self.store = cluster.store
        self.docker = docker_client
        self.server_id = server_id
        self.credentials = credentials
        #: the API server's port (set once it listens): pods reach it on the host network
        self.api_port = 0
        self._running: dict[str, asyncio.Task] = {}
        self._tokens: dict[str, str] = {}
        self.store.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.storage_key != "pods":
            return
        pod = event.object
        uid = pod["metadata"]["uid"]
        if event.type == "ADDED" and not pod["spec"].get("nodeName"):
            self._running[uid] = asyncio.get_running_loop().create_task(self._run(pod["metadata"]["namespace"], pod["metadata"]["name"], uid))
        elif event.type == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            task = self._running.get(uid)
            if task is not None and not task.done() and not getattr(task, "stopping", False):
                task.stopping = True  # type: ignore[attr-defined]
                asyncio.get_running_loop().create_task(self._stop(pod, event.type == "DELETED"))

    # status ----------------------------------------------------------------------------
    def _update_status(self, namespace: str, name: str, uid: str, change: Any) -> dict[str, Any] | None:
        pod = self.store.get("pods", namespace, name)
        if pod is None or pod["metadata"]["uid"] != uid:
            return None
        change(pod)
        return self.store.put("pods", pod)

    @staticmethod
    def _conditions(ready: bool, stamp: str) -> list[dict[str, Any]]:
        value = "True" if ready else "False"
        return [{"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp},
                {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp},
                {"type": "Ready", "status": value, "lastProbeTime": None, "lastTransitionTime": stamp},
                {"type": "ContainersReady", "status": value, "lastProbeTime": None, "lastTransitionTime": stamp},
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}]

    # the pod's life ----------------------------------------------------------------------
    async def _run(self, namespace: str, name: str, uid: str) -> None:
        def bind(pod: dict[str, Any]) -> None:
            pod["spec"]["nodeName"] = NODE
            # bound, its containers not yet started: what kubectl shows as ContainerCreating
            pod["status"].update(hostIP="127.0.0.1", hostIPs=[{"ip": "127.0.0.1"}], startTime=now(),
                                 conditions=[{"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now()}],
                                 containerStatuses=[self._waiting(c, "ContainerCreating", "") for c in pod["spec"]["containers"]])
        pod = self._update_status(namespace, name, uid, bind)
        if pod is None:
            return
        self.cluster.record_event(pod, "Scheduled", f"Successfully assigned {namespace}/{name} to {NODE}", component="default-scheduler",
                                  host=NODE, series_time=True)
        spec = pod["spec"]
        try:
            envs = [self._environment(pod, c) for c in spec["containers"]]
        except ConfigError as exc:
            problem = str(exc)
            for container in spec["containers"]:
                self._event(pod, container, "Failed", f"Error: {problem}", "Warning")
            self._update_status(namespace, name, uid, lambda p: p["status"].update(containerStatuses=[
                self._waiting(c, "CreateContainerConfigError", problem) for c in spec["containers"]]))
            return
        try:
            mounts = [self._host_path_mounts(spec, c) for c in spec["containers"]]
        except MountError as exc:
            # kubelets retry the mount and the pod waits in ContainerCreating; here it waits for good
            self.cluster.record_event(pod, "FailedMount", str(exc), "Warning", component="kubelet", host=NODE)
            return
        restarts = [0] * len(spec["containers"])
        exits: list[dict[str, Any] | None] = [None] * len(spec["containers"])
        while True:
            started = []
            for index, container in enumerate(spec["containers"]):
                if exits[index] is not None:
                    started.append(None)
                    continue
                if restarts[index]:
                    self._event(pod, container, "BackOff", f"Back-off restarting failed container {container['name']} in pod "
                                f"{name}_{namespace}({uid})", "Warning")
                try:
                    image = container["image"]
                    if await asyncio.to_thread(self._image_present, image):
                        # an image the engine has is used whatever the pull policy (no re-pull for
                        # Always); the wording of 1.35+ kubelets, which name the container in fieldPath
                        self._event(pod, container, "Pulled", f'Container image "{image}" already present on machine and can be accessed by the pod')
                    else:
                        # the engine pulls it, from any registry it reaches (one on loopback, say)
                        self._event(pod, container, "Pulling", f'Pulling image "{image}"')
                        began = asyncio.get_running_loop().time()
                        try:
                            size = await asyncio.to_thread(self._pull, image)
                        except Exception as exc:  # noqa: BLE001 - whatever the engine says is the pull's failure
                            raise ImagePullError(" ".join(str(exc).split())[:300]) from None
                        took = f"{asyncio.get_running_loop().time() - began:.3f}s"
                        self._event(pod, container, "Pulled", f'Successfully pulled image "{image}" in {took} ({took} including waiting). '
                                                              f"Image size: {size} bytes.")
                    started.append(await asyncio.to_thread(self._start, pod, container, envs[index], restarts[index], mounts[index]))
                    self._event(pod, container, "Created", "Container created")
                    self._event(pod, container, "Started", "Container started")
                except Exception as exc:  # noqa: BLE001 - any engine error is the container's waiting reason
                    problem = " ".join(str(exc).split())[:300]
                    reason = "ErrImagePull" if isinstance(exc, ImagePullError) else "RunContainerError"
                    if reason == "ErrImagePull":
                        self._event(pod, container, "Failed", f'Failed to pull image "{container["image"]}": {problem}', "Warning")
                    self._event(pod, container, "Failed", f"Error: {reason}", "Warning")
                    self._update_status(namespace, name, uid, lambda p: p["status"].update(phase="Pending", containerStatuses=[
                        self._waiting(c, reason, problem) for c in spec["containers"]]))
                    return
            stamp = now()
            statuses = [self._running_status(c, s, restarts[i]) if s else exits[i] for i, (c, s) in enumerate(zip(spec["containers"], started))]
            self._update_status(namespace, name, uid, lambda p: p["status"].update(
                phase="Running", podIP="127.0.0.1", podIPs=[{"ip": "127.0.0.1"}], conditions=self._conditions(True, stamp), containerStatuses=statuses))
            results = await asyncio.gather(*(asyncio.to_thread(self._wait, s) for s in started if s))
            waiting = iter(results)
            for index, container in enumerate(spec["containers"]):
                if started[index]:
                    exits[index] = self._terminated_status(container, started[index], next(waiting), restarts[index])
            if getattr(asyncio.current_task(), "stopping", False):
                return
            policy = spec.get("restartPolicy", "Always")
            again = [i for i, e in enumerate(exits) if policy == "Always" or (policy == "OnFailure" and e["state"]["terminated"]["exitCode"] != 0)]
            if not again:
                codes = [e["state"]["terminated"]["exitCode"] for e in exits]
                phase = "Succeeded" if all(code == 0 for code in codes) else "Failed"
                stamp = now()
                self._update_status(namespace, name, uid, lambda p: p["status"].update(
                    phase=phase, conditions=self._conditions(False, stamp), containerStatuses=exits))
                return
            for i in again:
                restarts[i] += 1
                exits[i] = None
            await asyncio.sleep(1)

    def _event(self, pod: dict[str, Any], container: dict[str, Any], reason: str, message: str, kind: str = "Normal") -> None:
        self.cluster.record_event(pod, reason, message, kind, component="kubelet", host=NODE,
                                  field_path=f"spec.containers{{{container['name']}}}")

    def _pull(self, image: str) -> int:
        if "@" in image:  # by digest
            pulled = self.docker.images.pull(image)
        else:
            repository, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
            pulled = self.docker.images.pull(repository, tag=tag)
        return int(pulled.attrs.get("Size", 0))

    def _image_present(self, image: str) -> bool:
        try:
            self.docker.images.get(image)
            return True
        except Exception:  # noqa: BLE001 - not found, or any engine error: not known to be present
            return False

    def _environment(self, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
        namespace = pod["metadata"]["namespace"]
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            kind, ref = ("secrets", source["secretRef"]) if source.get("secretRef") else ("configmaps", source.get("configMapRef") or {})
            data = self._data(kind, namespace, ref["name"], ref.get("optional", False))
            env.update({source.get("prefix", "") + k: v for k, v in data.items()})
        for var in container.get("env") or []:
            source = var.get("valueFrom")
            if source is None:
                env[var["name"]] = var.get("value", "")
            elif source.get("secretKeyRef") or source.get("configMapKeyRef"):
                kind, ref = ("secrets", source["secretKeyRef"]) if source.get("secretKeyRef") else ("configmaps", source["configMapKeyRef"])
                data = self._data(kind, namespace, ref["name"], ref.get("optional", False))
                if ref["key"] not in data and not ref.get("optional"):
                    raise ConfigError(f"couldn't find key {ref['key']} in {'Secret' if kind == 'secrets' else 'ConfigMap'} {namespace}/{ref['name']}")
                if ref["key"] in data:
                    env[var["name"]] = data[ref["key"]]
            elif source.get("fieldRef"):
                path = source["fieldRef"]["fieldPath"]
                values = {"metadata.name": pod["metadata"]["name"], "metadata.namespace": namespace, "metadata.uid": pod["metadata"]["uid"],
                          "spec.nodeName": NODE, "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
                          "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1"}
                label = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
                env[var["name"]] = (pod["metadata"].get(label.group(1)) or {}).get(label.group(2), "") if label else values.get(path, "")
        return env

    @staticmethod
    def _host_path_mounts(spec: dict[str, Any], container: dict[str, Any]) -> list[str]:
        """Docker bind mounts for the container's ``volumeMounts`` of ``hostPath`` volumes (the
        node is this machine, so the host path is the node's). ``type`` is checked as a kubelet
        checks it (``DirectoryOrCreate`` makes a 0755 folder, ``FileOrCreate`` an empty 0644 file);
        ``readOnly`` and ``subPath`` apply. Mounts of other volume kinds are not served (see the
        README's limits)."""
        import os
        from pathlib import Path

        volumes = {volume["name"]: volume for volume in spec.get("volumes") or []}
        # Docker's "host:container:mode" list, not its dict keyed by host path: one host path may be
        # mounted at two places (a read-write and a read-only mount of one volume, say)
        binds: list[str] = []
        for mount in container.get("volumeMounts") or []:
            source = (volumes.get(mount["name"]) or {}).get("hostPath")
            if source is None:
                continue
            path, kind = Path(source["path"]), source.get("type") or ""
            if kind == "DirectoryOrCreate" and not path.exists():
                path.mkdir(mode=0o755, parents=True)
            elif kind == "FileOrCreate" and not path.exists():
                path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                path.touch(mode=0o644)
            elif kind in _HOST_PATH_CHECKS:
                test, what = _HOST_PATH_CHECKS[kind]
                if not getattr(path, test)():
                    raise MountError(f'MountVolume.SetUp failed for volume "{mount["name"]}" : hostPath type check failed: '
                                     f"{path} is not a {what}")
            target = str(path / mount["subPath"]) if mount.get("subPath") else str(path)
            if mount.get("subPath") and not os.path.exists(target):
                os.makedirs(target, mode=0o755, exist_ok=True)  # a kubelet creates a missing subPath folder
            binds.append(f"{target}:{mount['mountPath']}:{'ro' if mount.get('readOnly') else 'rw'}")
        return binds

    def _data(self, kind: str, namespace: str, name: str, optional: bool) -> dict[str, str]:
        obj = self.store.get(kind, namespace, name)
        if obj is None:
            if optional:
                return {}
            raise ConfigError(f'{kind[:-1]} "{name}" not found')
        if kind == "secrets":
            return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        return dict(obj.get("data") or {})

    # the API from inside a pod ---------------------------------------------------------
    def _service_environment(self) -> dict[str, str]:
        """What a kubelet sets in every container, service links or not: the default
        namespace's ``kubernetes`` Service (what load_incluster_config reads)."""
        host, port = "127.0.0.1", str(self.api_port)
        return {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port, "KUBERNETES_SERVICE_PORT_HTTPS": port,
                "KUBERNETES_PORT": f"tcp://{host}:{port}"}

    def _service_account_volume(self, pod: dict[str, Any]) -> dict[str, dict[str, str]]:
        """The pod's service-account token, CA and namespace, mounted read-only where client
        libraries look, unless ``automountServiceAccountToken`` is false (a token per pod,
        revoked when the pod goes)."""
        if pod["spec"].get("automountServiceAccountToken") is False:
            return {}
        meta = pod["metadata"]
        folder = self.credentials.folder / "pods" / meta["uid"]
        if meta["uid"] not in self._tokens:
            self._tokens[meta["uid"]] = self.credentials.issue(meta["namespace"], pod["spec"].get("serviceAccountName") or "default")
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o755)
            for name, data in (("token", self._tokens[meta["uid"]]), ("namespace", meta["namespace"]),
                               ("ca.crt", self.credentials.ca_pem.decode())):
                (folder / name).write_text(data)
                (folder / name).chmod(0o644)
        return {str(folder): {"bind": SERVICE_ACCOUNT_DIR, "mode": "ro"}}

    # Docker ----------------------------------------------------------------------------
    def _start(self, pod: dict[str, Any], container: dict[str, Any], env: dict[str, str], restart: int,
               mounts: list[str] | None = None) -> Any:
        meta = pod["metadata"]
        env = {**self._service_environment(), **env}  # the container's own env wins, as in a kubelet
        limits = (container.get("resources") or {}).get("limits") or {}
        options: dict[str, Any] = {}
        if "cpu" in limits:
            options["nano_cpus"] = int(quantity(limits["cpu"]) * 1e9)
        if "memory" in limits:
            options["mem_limit"] = int(quantity(limits["memory"]))
            options["memswap_limit"] = options["mem_limit"]  # no swap: a pod over its limit is OOMKilled
        return self.docker.containers.run(
            container["image"], entrypoint=container.get("command"), command=container.get("args"),
            # a pod's hostname is spec.hostname or its name (what socket.gethostname() says, which
            # ZenML's orchestrator pod uses to find itself), resolving to the pod IP as in a
            # pod's /etc/hosts; a hostNetwork pod has the node's, as on a cluster
            environment=env if pod["spec"].get("hostNetwork") else {"HOSTNAME": self._hostname(pod), **env},
            **({} if pod["spec"].get("hostNetwork") else {"hostname": self._hostname(pod),
                                                         "extra_hosts": {self._hostname(pod): "127.0.0.1"}}),
            working_dir=container.get("workingDir"), network_mode="host", detach=True,
            volumes=[*(mounts or []), *(f"{host}:{bind['bind']}:{bind['mode']}" for host, bind in self._service_account_volume(pod).items())],
            # a shared process namespace makes the pause container PID 1; Docker's init plays it
            init=bool(pod["spec"].get("shareProcessNamespace")),
            name=f"k8s_{container['name']}_{meta['name']}_{meta['namespace']}_{meta['uid'][:8]}_{restart}",
            labels={LABEL: self.server_id, f"{LABEL}.pod-uid": meta["uid"], f"{LABEL}.pod": meta["name"],
                    f"{LABEL}.namespace": meta["namespace"], f"{LABEL}.container": container["name"]},
            **options)

    @staticmethod
    def _hostname(pod: dict[str, Any]) -> str:
        return (pod["spec"].get("hostname") or pod["metadata"]["name"])[:63]

    @staticmethod
    def _wait(docker_container: Any) -> dict[str, Any]:
        docker_container.wait()
        docker_container.reload()
        return docker_container.attrs["State"]

    # container statuses ----------------------------------------------------------------
    @staticmethod
    def _base(container: dict[str, Any], restarts: int) -> dict[str, Any]:
        return {"name": container["name"], "image": container["image"], "imageID": "", "restartCount": restarts, "started": False, "ready": False}

    def _waiting(self, container: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
        waiting = {"reason": reason, "message": message} if message else {"reason": reason}
        return {**self._base(container, 0), "state": {"waiting": waiting}}

    def _running_status(self, container: dict[str, Any], docker_container: Any, restarts: int) -> dict[str, Any]:
        return {**self._base(container, restarts), "containerID": f"docker://{docker_container.id}", "started": True, "ready": True,
                "state": {"running": {"startedAt": now()}}}

    def _terminated_status(self, container: dict[str, Any], docker_container: Any, state: dict[str, Any], restarts: int) -> dict[str, Any]:
        code = int(state.get("ExitCode", 0))
        reason = "OOMKilled" if state.get("OOMKilled") else ("Completed" if code == 0 else "Error")
        return {**self._base(container, restarts), "containerID": f"docker://{docker_container.id}",
                "state": {"terminated": {"exitCode": code, "reason": reason, "startedAt": state.get("StartedAt", "")[:19] + "Z",
                                         "finishedAt": state.get("FinishedAt", "")[:19] + "Z", "containerID": f"docker://{docker_container.id}"}}}

    # stop, logs, cleanup ---------------------------------------------------------------
    def _containers(self, uid: str) -> list[Any]:
        return self.docker.containers.list(all=True, filters={"label": f"{LABEL}.pod-uid={uid}"})

    async def _stop(self, pod: dict[str, Any], already_gone: bool) -> None:
        token = self._tokens.pop(pod["metadata"]["uid"], None)
        if token:
            self.credentials.revoke(token)
        grace = pod["metadata"].get("deletionGracePeriodSeconds", 0) if not already_gone else 0
        if not already_gone:
            for container in pod["spec"]["containers"]:
                self._event(pod, container, "Killing", f"Stopping container {container['name']}")
        for container in await asyncio.to_thread(self._containers, pod["metadata"]["uid"]):
            await asyncio.to_thread(container.stop, timeout=int(grace))
        if not already_gone:
            current = self.store.get("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
            if current is not None and current["metadata"]["uid"] == pod["metadata"]["uid"]:
                self.cluster.finish_pod_deletion(current)

    async def logs(self, pod: dict[str, Any], container: str, follow: bool, tail_lines: int | None, timestamps: bool) -> AsyncIterator[bytes]:
        found = [c for c in await asyncio.to_thread(self._containers, pod["metadata"]["uid"]) if c.labels.get(f"{LABEL}.container") == container]
        if not found:
            return
        latest = max(found, key=lambda c: c.attrs["Created"])
        queue: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def pump() -> None:
            try:
                for chunk in latest.logs(stream=True, follow=follow, tail=tail_lines if tail_lines is not None else "all", timestamps=timestamps):
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        loop.run_in_executor(None, pump)
        while (chunk := await queue.get()) is not None:
            yield chunk

    def remove_all(self) -> None:
        """Remove every container this server started (called when it stops)."""
        from concurrent.futures import ThreadPoolExecutor

        from docker.errors import NotFound

        def remove(container: Any) -> None:
            try:
                container.remove(force=True)
            except NotFound:
                pass  # removed meanwhile (its pod's deletion got there first)

        # side by side: a whole suite's pods, one after another, take minutes on a loaded engine
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(remove, self.docker.containers.list(all=True, filters={"label": f"{LABEL}={self.server_id}"})))
