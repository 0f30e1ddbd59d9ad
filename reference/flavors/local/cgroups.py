"""Resource limits for plain processes through Linux control groups (v1 and v2).

The local flavor uses this to *enforce* ``cpu_count`` (CFS quota) and ``memory`` (memory limit)
for each step process, so the limits are observable inside the step exactly as in a container.
It needs a writable cgroup file system (root, or a delegated subtree); :func:`probe` says
whether this host has one, and the local flavor declares cpu/memory unsupported when not.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

CFS_PERIOD_US = 100_000
_PARENT = "orcakit"


@dataclass(frozen=True)
class CgroupHost:
    version: int  # 1 or 2
    root: Path

    def controller_dir(self, controller: str) -> Path:
        return self.root / controller if self.version == 1 else self.root


#: How a user without root gets a cgroup subtree of their own (said in every refusal).
DELEGATION_FIX = (
    "run as root; or, on a systemd machine with cgroup v2, start orcakit in a delegated scope: "
    "systemd-run --user --scope -p Delegate=yes orcakit run ...; or (cgroup v1) have root create "
    "and hand over orcakit's parent groups: mkdir /sys/fs/cgroup/{cpu,memory}/orcakit && chown -R $USER "
    "/sys/fs/cgroup/{cpu,memory}/orcakit"
)


def probe(root: str = "/sys/fs/cgroup") -> CgroupHost | None:
    """The host's cgroup layout if this process may create limited groups, else None."""
    return probe_with_reason(root)[0]


def probe_with_reason(root: str = "/sys/fs/cgroup", own: str | None = None) -> tuple[CgroupHost | None, str]:
    """``(layout, "")`` when this process may create limited groups, else ``(None, why not)``.

    Where it looks, in order: the whole hierarchy (root); on cgroup v2, the group this process
    is in when it is delegated to this user (``systemd-run --user --scope -p Delegate=yes``:
    orcakit's groups go below it); on cgroup v1, orcakit's parent groups when root handed them
    to this user. ``own``: this process's v2 group path (default: read from /proc/self/cgroup).
    """
    base = Path(root)
    try:
        if (base / "cgroup.controllers").is_file():  # unified hierarchy (v2)
            controllers = (base / "cgroup.controllers").read_text().split()
            if not {"cpu", "memory"} <= set(controllers):
                return None, f"the cgroup v2 hierarchy at {base} does not offer the cpu and memory controllers"
            if os.access(base, os.W_OK):
                host = CgroupHost(2, base)
                _ensure_parent(host)
                return host, ""
            return _delegated_v2(base, own)
        if all((base / c / "cgroup.procs").is_file() for c in ("cpu", "memory")):
            if all(os.access(base / c, os.W_OK) or os.access(base / c / _PARENT, os.W_OK) for c in ("cpu", "memory")):
                host = CgroupHost(1, base)
                _ensure_parent(host)
                return host, ""
            return None, f"this user (uid {os.geteuid()}) may not create groups in the cgroup v1 hierarchies {base}/cpu and {base}/memory"
        return None, f"no cgroup file system with the cpu and memory controllers at {base}"
    except OSError as exc:
        return None, f"the cgroup file system at {base} cannot be prepared: {exc}"


def _delegated_v2(base: Path, own: str | None) -> tuple[CgroupHost | None, str]:
    """This process's own v2 group as orcakit's root, when it is delegated to this user."""
    refused = f"this user (uid {os.geteuid()}) may not write the cgroup v2 hierarchy at {base}"
    if own is None:
        try:
            own = next((line[3:].strip() for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::")), None)
        except OSError:
            own = None
    if not own or own == "/":
        return None, refused + " and this process is in no group of its own"
    group = base / own.lstrip("/")
    if not (os.access(group, os.W_OK) and os.access(group / "cgroup.procs", os.W_OK)):
        return None, refused + f", and its own group {group} is not delegated to it"
    if not {"cpu", "memory"} <= set((group / "cgroup.controllers").read_text().split()):
        return None, refused + f"; its delegated group {group} lacks the cpu or memory controller (delegate them: -p Delegate=yes)"
    # cgroup v2 allows no process in a group whose controllers are enabled for children: this
    # process moves to a leaf of its own first; then orcakit's groups go beside it.
    leaf = group / "orcakit-client"
    leaf.mkdir(exist_ok=True)
    try:
        (leaf / "cgroup.procs").write_text(str(os.getpid()))
        (group / "cgroup.subtree_control").write_text("+cpu +memory")
    except OSError as exc:
        return None, (f"the delegated group {group} cannot enable cpu and memory for orcakit's groups ({exc.strerror or exc}): "
                      "other processes share it; start orcakit itself in the scope (systemd-run --user --scope -p Delegate=yes orcakit ...)")
    host = CgroupHost(2, group)
    _ensure_parent(host)
    return host, ""


def _ensure_parent(host: CgroupHost) -> None:
    for controller in ("cpu", "memory"):
        (host.controller_dir(controller) / _PARENT).mkdir(exist_ok=True)
    if host.version == 2:
        # Controllers must be enabled for children at every level above the leaf.
        for level in (host.root, host.root / _PARENT):
            try:
                (level / "cgroup.subtree_control").write_text("+cpu +memory")
            except OSError:
                pass


@dataclass(frozen=True)
class StepCgroup:
    """One step attempt's group(s): join with :meth:`procs_files`, clean up with :meth:`remove`."""

    host: CgroupHost
    name: str

    def dirs(self) -> list[Path]:
        if self.host.version == 2:
            return [self.host.root / _PARENT / self.name]
        return [self.host.controller_dir(c) / _PARENT / self.name for c in ("cpu", "memory")]

    def procs_files(self) -> list[str]:
        """Files a process writes its PID into to join (the child does it before running)."""
        return [str(d / "cgroup.procs") for d in self.dirs()]

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed a process of this group."""
        if self.host.version == 2:
            events = self.dirs()[0] / "memory.events"
        else:
            events = self.dirs()[1] / "memory.oom_control"
        try:
            match = re.search(r"^oom_kill (\d+)", events.read_text(), re.M)
        except OSError:
            return False
        return bool(match and int(match.group(1)) > 0)

    def remove(self) -> None:
        for directory in self.dirs():
            try:
                directory.rmdir()
            except OSError:
                pass


def create(host: CgroupHost, name: str, cpu_count: float | None, memory_bytes: int | None) -> StepCgroup:
    """A new group limited to ``cpu_count`` CPUs (CFS quota) and ``memory_bytes``."""
    group = StepCgroup(host, re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:200])
    for directory in group.dirs():
        directory.mkdir(exist_ok=True)
    quota, period = cfs_quota(cpu_count) if cpu_count is not None else (None, CFS_PERIOD_US)
    if host.version == 2:
        leaf = group.dirs()[0]
        if quota is not None:
            (leaf / "cpu.max").write_text(f"{quota} {period}")
        if memory_bytes is not None:
            (leaf / "memory.max").write_text(str(memory_bytes))
            _try_write(leaf / "memory.swap.max", "0")
    else:
        cpu_dir, memory_dir = group.dirs()
        if quota is not None:
            (cpu_dir / "cpu.cfs_period_us").write_text(str(period))
            (cpu_dir / "cpu.cfs_quota_us").write_text(str(quota))
        if memory_bytes is not None:
            (memory_dir / "memory.limit_in_bytes").write_text(str(memory_bytes))
            _try_write(memory_dir / "memory.memsw.limit_in_bytes", str(memory_bytes))
    return group


#: The kernel's bounds: quota >= 1 ms, period <= 1 s. So the finest enforceable request is
#: 0.001 CPU, with a 1 s period; anything finer is refused rather than silently rounded up.
MIN_QUOTA_US, MAX_PERIOD_US = 1000, 1_000_000
MIN_CPU = MIN_QUOTA_US / MAX_PERIOD_US


def cfs_quota(cpu_count: float) -> tuple[int, int]:
    """``(quota, period)`` in microseconds for ``cpu_count`` CPUs."""
    if cpu_count < MIN_CPU:
        raise ValueError(f"cpu_count={cpu_count} is below {MIN_CPU}, the smallest CPU share the kernel can enforce")
    period = CFS_PERIOD_US if cpu_count * CFS_PERIOD_US >= MIN_QUOTA_US else MAX_PERIOD_US
    return round(cpu_count * period), period


def _try_write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError:  # swap accounting is often off; the memory limit still holds
        pass


def join(procs_files: list[str], pid: int | None = None) -> None:
    """Move ``pid`` (default: this process) into the groups; uses only os-level calls, so it is
    safe between fork and exec."""
    data = str(pid or os.getpid()).encode()
    for path in procs_files:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
