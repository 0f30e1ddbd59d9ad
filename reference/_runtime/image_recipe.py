"""Step image recipes: the parent image plus orcakit, the pipeline's requirements and the steps'
code — engine-neutral (a backend supplies the parent's Python and does the build).

Built without any network inside the build (``network_mode="none"``, ``pip install
--no-index``): every wheel is fetched or built on the host first and sent in the build context.

- **Dependency wheels** (orcakit's runtime requirements, pinned to the versions installed here,
  plus the store drivers the stack needs and the config's ``requirements``) come from ``pip
  download`` for the parent image's Python and platform, cached under ``<cache>/wheels`` keyed
  by the requirement set and the target, so only the first build of a set downloads anything.
- **orcakit itself** is ``pip wheel``-ed from its source tree (an editable install: the folder
  above the ``orcakit`` package) or repacked from the installed distribution, cached by a hash of
  its files.
- **The steps' code**: for every module a step (or the pipeline) comes from, its outermost
  regular package (or the module file itself), plus the config's ``code_paths``, copied to
  ``/opt/orcakit/code``, which a ``.pth`` file puts first on ``sys.path``.

The tag is ``orcakit-step:<16 hex>``, a SHA-256 over the parent image ID, the Dockerfile (which
names every requirement), the wheels' hashes and the code files, so an unchanged pipeline finds
its image and builds nothing.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from base64 import urlsafe_b64encode
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from filelock import FileLock
from packaging.requirements import Requirement

from orcakit import PipelineSnapshot, SubmissionError

from .stores import ArtifactStoreKind, StackStores

logger = logging.getLogger("orcakit.image")

#: Bump when the Dockerfile recipe changes in a way its text does not show.
RECIPE_VERSION = "1"
IMAGE_REPOSITORY = "orcakit-step"
CODE_DIR = "/opt/orcakit/code"
WHEEL_DIR = "/tmp/orcakit-wheels"
#: Label on every step image (``docker image prune --filter label=orcakit.image=step``).
IMAGE_LABEL = "orcakit.image"
_SKIP_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".venv", "venv", "node_modules", ".mypy_cache", ".pytest_cache",
              ".ruff_cache", "build", "dist", ".tox", ".nox"}
_MAX_CODE_BYTES = 200 * 2**20
#: Run with python3 in a parent image; prints the JSON that :meth:`TargetPython.from_probe` reads.
PROBE_SCRIPT = (
    "import importlib.util, json, platform, sys; "
    "print(json.dumps({'python': sys.executable, 'version': list(sys.version_info[:2]), "
    "'machine': platform.machine(), 'libc': list(platform.libc_ver()), "
    "'pip': importlib.util.find_spec('pip') is not None}))"
)


def cache_root() -> Path:
    return Path(os.environ.get("ORCAKIT_CACHE") or Path.home() / ".cache" / "orcakit").expanduser()


@dataclass(frozen=True)
class TargetPython:
    """The Python of a parent image, as :data:`PROBE_SCRIPT` reports it (read once per image ID)."""

    image_id: str
    python: str
    version: tuple[int, int]
    machine: str
    libc: str
    libc_version: str
    has_pip: bool

    @classmethod
    def from_probe(cls, image_id: str, data: dict[str, Any], image_name: str, fix: str) -> "TargetPython":
        """Read :data:`PROBE_SCRIPT`'s output; refuse a Python orcakit cannot run on."""
        info = cls(
            image_id=image_id, python=data["python"] or "python3", version=tuple(data["version"]), machine=data["machine"],
            libc=data["libc"][0] or "", libc_version=data["libc"][1] or "", has_pip=data["pip"],
        )
        if info.version < (3, 11):
            raise SubmissionError(
                f"the parent image {image_name!r} has Python {info.version[0]}.{info.version[1]}; orcakit needs 3.11 or newer",
                fix=fix,
            )
        if not info.has_pip:
            raise SubmissionError(
                f"the parent image {image_name!r} has python3 but no pip",
                why="the step image installs orcakit and the requirements from wheels with `python3 -m pip install --no-index`",
                fix="install pip in the parent image (Debian: python3-pip) or use orcakit/python-base:bookworm (scripts/testenv/ensure-base-image.sh)",
            )
        return info

    def target(self) -> dict[str, Any]:
        return {"version": list(self.version), "machine": self.machine, "libc": self.libc, "libc_version": self.libc_version}

    def pip_platform_args(self) -> list[str]:
        """``pip download`` options that select wheels this image's Python can install."""
        major, minor = self.version
        cp = f"cp{major}{minor}"
        args = ["--only-binary=:all:", "--python-version", f"{major}.{minor}", "--implementation", "cp",
                "--abi", cp, "--abi", "abi3", "--abi", "none"]
        arch = self.machine
        if self.libc == "glibc":
            glibc_minor = int(self.libc_version.split(".")[1]) if "." in self.libc_version else 17
            platforms = [f"manylinux_2_{m}_{arch}" for m in range(glibc_minor, 16, -1)]
            platforms += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
        else:
            platforms = [f"musllinux_1_2_{arch}", f"musllinux_1_1_{arch}"]
        for platform_tag in platforms:
            args += ["--platform", platform_tag]
        return args


@dataclass(frozen=True)
class StepImage:
    tag: str
    python: str
    built: bool
    seconds: float


@dataclass(frozen=True)
class _Wheels:
    folder: Path
    files: list[str]
    digest: str


@dataclass(frozen=True)
class ImagePlan:
    tag: str
    parent: "TargetPython"
    requirements: list[str]
    dockerfile: str
    deps: _Wheels
    orcakit_wheel: _Wheels
    code: list[tuple[str, Path]]


class ImageRecipe:
    """What the step image of a snapshot is made of, for a given target Python, and the tag
    that hashes it. Engine-neutral: a backend finds the target (:class:`TargetPython`, by
    running python3 in its parent image), checks whether an image with the tag exists, and
    builds :meth:`write_context` with its own engine (Docker, BuildKit, Kaniko...)."""

    def __init__(
        self, *, requirements: Iterable[str] = (), code_paths: Iterable[str] = (), wheel_cache: str | None = None,
        dynamic_extras: Iterable[str] = (),
    ) -> None:
        self.extra_requirements = list(requirements)
        #: orcakit extras a dynamic pipeline's orchestration environment needs to launch steps
        #: (e.g. "docker": it starts sibling containers).
        self.dynamic_extras = list(dynamic_extras)
        self.code_paths = list(code_paths)
        self.wheel_cache = Path(wheel_cache).expanduser() if wheel_cache else cache_root() / "wheels"

    @staticmethod
    def target_python(image_id: str, image_name: str, probe: Callable[[], dict[str, Any]], fix: str) -> "TargetPython":
        """The parent image's Python: ``probe()`` runs :data:`PROBE_SCRIPT` in it with the
        backend's engine and returns its JSON; the answer is cached by image ID, so each
        parent image is probed once per machine."""
        record = cache_root() / "parents" / f"{image_id.replace(':', '-')}.json"
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError):
            data = probe()
            record.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(record, json.dumps(data).encode())
        return TargetPython.from_probe(image_id, data, image_name, fix)

    def plan(self, snapshot: PipelineSnapshot, target: "TargetPython") -> "ImagePlan":
        """Everything the image is made of, and the tag that hashes it (nothing is built)."""
        requirements = self.requirements(snapshot)
        deps = self.dependency_wheels(requirements, target)
        orcakit_wheel = self.orcakit_wheel()
        code = self.collect_code(snapshot)
        dockerfile = self.dockerfile(target, requirements, orcakit_wheel.files[0])
        digest = hashlib.sha256()
        for part in (RECIPE_VERSION, target.image_id, dockerfile, deps.digest, orcakit_wheel.digest):
            digest.update(part.encode() + b"\0")
        for arcname, path in code:
            digest.update(arcname.encode() + b"\0" + _file_digest(path).encode() + b"\0")
        tag = f"{IMAGE_REPOSITORY}:{digest.hexdigest()[:16]}"
        return ImagePlan(tag, target, requirements, dockerfile, deps, orcakit_wheel, code)

    @staticmethod
    def write_context(plan: "ImagePlan", fileobj: Any) -> None:
        """The build context (a tar: Dockerfile, wheels, code) of ``plan`` into ``fileobj``."""
        with tarfile.open(fileobj=fileobj, mode="w") as tar:
            _add_bytes(tar, "Dockerfile", plan.dockerfile.encode())
            _add_bytes(tar, "code/.orcakit-code", b"")
            for name in plan.deps.files:
                _add_file(tar, f"deps/{name}", plan.deps.folder / name)
            for name in plan.orcakit_wheel.files:
                _add_file(tar, f"orcakit/{name}", plan.orcakit_wheel.folder / name)
            for arcname, path in plan.code:
                _add_file(tar, f"code/{arcname}", path)

    def requirements(self, snapshot: PipelineSnapshot) -> list[str]:
        """orcakit's runtime requirements (pinned to this machine's versions), the store drivers
        the stack needs, then the config's requirements."""
        stores = StackStores.of(snapshot.stack)
        extras = set()
        if stores.run_store_url.startswith("postgresql"):
            extras.add("postgres")
        if stores.artifact_store_kind is ArtifactStoreKind.S3:
            extras.add("s3")
        if snapshot.dynamic:
            extras.update(self.dynamic_extras)  # what the orchestration environment launches steps with
        return orcakit_requirements(extras) + list(self.extra_requirements)

    def dependency_wheels(self, requirements: list[str], parent: "TargetPython") -> _Wheels:
        key = _digest(json.dumps({"requirements": requirements, "target": parent.target()}, sort_keys=True))[:16]
        folder = self.wheel_cache / f"deps-{key}"

        def fetch(into: Path) -> None:
            logger.info("fetching wheels for the step image: %s", " ".join(requirements))
            self._fetch_wheels(requirements, parent, into)

        manifest = _cached_wheels(folder, fetch)
        return _Wheels(folder, sorted(manifest), _digest(json.dumps(manifest, sort_keys=True)))

    def _fetch_wheels(self, requirements: list[str], parent: "TargetPython", into: Path) -> None:
        pip = host_pip()
        base = [*pip, "--disable-pip-version-check", "--no-input"]
        attempts = [[*base, "download", "-d", str(into), *parent.pip_platform_args(), *requirements]]
        if sys.version_info[:2] == parent.version and parent.libc == "glibc" and parent.machine == os.uname().machine:
            # Same interpreter line: sdist-only requirements can be built into wheels here.
            attempts.append([*base, "wheel", "-w", str(into), *requirements])
        errors = []
        for argv in attempts:
            result = subprocess.run(argv, capture_output=True, text=True)
            if result.returncode == 0:
                return
            errors.append(_tail(result.stdout + result.stderr, 15))
        raise SubmissionError(
            f"could not fetch wheels for the step image on this machine: {' '.join(requirements)}",
            why="the image is built without network access, from wheels fetched on the host (pip said:\n"
            + "\n---\n".join(errors) + "\n)",
            fix="check the requirement names and versions (orchestrator config `requirements`) and that PyPI is reachable from this machine",
        )

    def orcakit_wheel(self) -> _Wheels:
        """A wheel of the orcakit that runs this client, cached by a hash of its files."""
        version = importlib.metadata.version("orcakit")
        source = orcakit_source_tree()
        if source is not None:
            root, files = source
            identity = _digest("".join(f"{path.relative_to(root)}\0{_file_digest(path)}\0" for path in files))
        else:
            distribution = importlib.metadata.distribution("orcakit")
            identity = _digest(distribution.read_text("RECORD") or version)
        folder = self.wheel_cache / f"orcakit-{version}-{identity[:16]}"

        def build(into: Path) -> None:
            if source is not None:
                logger.info("building the orcakit wheel from %s", source[0])
                _wheel_from_source(*source, into=into)
            else:
                logger.info("repacking the installed orcakit distribution as a wheel")
                _wheel_from_installed(into=into)

        manifest = _cached_wheels(folder, build)
        return _Wheels(folder, sorted(manifest), identity)

    def collect_code(self, snapshot: PipelineSnapshot) -> list[tuple[str, Path]]:
        """``(path inside the code folder, host file)`` for the steps' code, sorted."""
        modules = {spec.source.partition(":")[0] for spec in snapshot.steps.values()}
        if snapshot.pipeline_source:
            modules.add(snapshot.pipeline_source.partition(":")[0])
        units: dict[str, Path] = {}
        for module in sorted(modules):
            unit = code_unit(module, snapshot.source_roots)
            if unit is not None:
                units[unit[0]] = unit[1]
        for extra in self.code_paths:
            path = Path(extra).expanduser().resolve()
            if not path.exists():
                raise SubmissionError(f"code path {extra!r} (orchestrator config code_paths) does not exist",
                                      fix="list files or folders that exist on this machine")
            units[path.name] = path
        files: dict[str, Path] = {}
        for arcname, path in units.items():
            for relative, file in _walk(path):
                files[f"{arcname}/{relative}" if relative else arcname] = file
        total = sum(path.stat().st_size for path in files.values())
        if total > _MAX_CODE_BYTES:
            raise SubmissionError(
                f"the steps' code to copy into the image is {total / 2**20:.0f} MiB ({', '.join(units)})",
                why="the whole package a step comes from is copied into the step image",
                fix="move data files out of the package, or install the code as a requirement",
            )
        return sorted(files.items())

    def dockerfile(self, parent: "TargetPython", requirements: list[str], orcakit_wheel: str) -> str:
        python = parent.python
        pip = [python, "-m", "pip", "install", "--no-index", "--no-cache-dir", "--disable-pip-version-check",
               "--no-warn-script-location"]
        setup = (
            "import compileall, os, orcakit, orcakit.reference.entrypoint; "
            "site = os.path.dirname(os.path.dirname(orcakit.__file__)); "
            f"open(os.path.join(site, 'orcakit-step-code.pth'), 'w').write(\"import sys; sys.path.insert(0, '{CODE_DIR}')\\n\"); "
            f"compileall.compile_dir('{CODE_DIR}', quiet=1); "
            # Stores under the client's home (root's default ~/.orcakit) are mounted at the same
            # path: the non-root step user must be able to pass through the image's own /root.
            "os.path.isdir('/root') and os.chmod('/root', 0o711)"
        )
        lines = [
            f"FROM {parent.image_id}",
            "ENV HOME=/tmp PYTHONUNBUFFERED=1",
            f"COPY deps/ {WHEEL_DIR}/deps/",
            "RUN " + json.dumps([*pip, "--find-links", f"{WHEEL_DIR}/deps", *requirements]),
            f"COPY orcakit/ {WHEEL_DIR}/orcakit/",
            "RUN " + json.dumps([*pip, "--no-deps", f"{WHEEL_DIR}/orcakit/{orcakit_wheel}"]),
            f"COPY code/ {CODE_DIR}/",
            "RUN " + json.dumps([python, "-c", setup]),
            "ENTRYPOINT []",
            "CMD " + json.dumps([python]),
            f'LABEL {IMAGE_LABEL}="step" orcakit.recipe="{RECIPE_VERSION}"',
        ]
        return "\n".join(lines) + "\n"



# -- orcakit's own requirements and wheel -----------------------------------------------------


def orcakit_requirements(extras: Iterable[str] = ()) -> list[str]:
    """orcakit's runtime requirements (and those of ``extras``), each pinned to the version
    installed here when it has no other environment marker (so steps and client agree); one
    with another marker is kept as written, for pip in the image to evaluate."""
    wanted = set(extras)
    base, extra_reqs = [], []
    for text in importlib.metadata.requires("orcakit") or []:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is None:
            base.append(_pin(requirement))
        elif marker.evaluate({"extra": ""}):
            base.append(text.strip())  # a marker of its own (python_version...): the image decides
        else:
            extra = next((e for e in sorted(wanted) if str(marker) == f'extra == "{e}"'), None)
            if extra is not None:
                extra_reqs.append(_pin(requirement))
    return sorted(base, key=str.lower) + sorted(extra_reqs, key=str.lower)


def _pin(requirement: Requirement) -> str:
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    try:
        return f"{requirement.name}{extras}=={importlib.metadata.version(requirement.name)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{requirement.name}{extras}{requirement.specifier}"


def orcakit_source_tree() -> tuple[Path, list[Path]] | None:
    """``(project root, files)`` when orcakit runs from its source tree (an editable install),
    else None. The files are what the wheel is built from: pyproject, readme, licence and the
    folders ``tool.setuptools.package-dir`` maps."""
    import tomllib

    import orcakit

    root = Path(orcakit.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text())
    except (OSError, ValueError):
        return None
    if project.get("project", {}).get("name") != "orcakit":
        return None
    package_dirs = project.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    folders = sorted({root / value for value in package_dirs.values()}) or [root]
    files = [pyproject]
    for name in sorted(os.listdir(root)):
        if name.upper().startswith(("README", "LICENSE", "LICENCE", "NOTICE", "MANIFEST.IN")) or name in ("setup.py", "setup.cfg"):
            if (root / name).is_file():
                files.append(root / name)
    for folder in folders:
        files.extend(path for _, path in _walk(folder))
    return root, sorted(set(files))


def _wheel_from_source(root: Path, files: list[Path], into: Path) -> None:
    """``pip wheel`` a copy of the source tree (an in-tree build would leave build/ and
    *.egg-info in the user's checkout)."""
    with tempfile.TemporaryDirectory(prefix="orcakit-src-") as tmp:
        for path in files:
            target = Path(tmp) / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        pip = [*host_pip(), "--disable-pip-version-check", "--no-input", "wheel", "--no-deps", "-w", str(into)]
        errors = []
        for extra in ([], ["--no-build-isolation"]):
            result = subprocess.run([*pip, *extra, tmp], capture_output=True, text=True)
            if result.returncode == 0:
                return
            errors.append(_tail(result.stdout + result.stderr, 15))
    raise SubmissionError(
        f"could not build a wheel of orcakit from {root}",
        why="pip said:\n" + "\n---\n".join(errors),
        fix="check that `pip wheel --no-deps` works in that folder (it needs setuptools>=69 from PyPI or installed)",
    )


def _wheel_from_installed(into: Path) -> None:
    """A wheel of the installed (non-editable) orcakit, rebuilt from its RECORD."""
    distribution = importlib.metadata.distribution("orcakit")
    version = distribution.version
    dist_info = f"orcakit-{version}.dist-info"
    wheel_path = into / f"orcakit-{version}-py3-none-any.whl"
    records = []
    with zipfile.ZipFile(wheel_path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for file in distribution.files or []:
            name = str(file).replace(os.sep, "/")
            if name.startswith("..") or "__pycache__" in name or name.endswith(".pyc"):
                continue  # scripts and byte code: pip recreates them
            if name.startswith(f"{dist_info}/") and name.rsplit("/", 1)[-1] in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
                continue
            data = Path(file.locate()).read_bytes()
            wheel.writestr(name, data)
            records.append(f"{name},sha256={urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}")
        if not any(r.startswith(f"{dist_info}/WHEEL,") for r in records):
            data = b"Wheel-Version: 1.0\nGenerator: orcakit\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
            wheel.writestr(f"{dist_info}/WHEEL", data)
        records.append(f"{dist_info}/RECORD,,")
        wheel.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")


def host_pip() -> list[str]:
    """An interpreter on this machine that has pip (the venv may not: uv makes venvs without it)."""
    candidates = [sys.executable, shutil.which("python3"), "/usr/bin/python3"]
    for python in dict.fromkeys(c for c in candidates if c):
        if subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode == 0:
            return [python, "-m", "pip"]
    raise SubmissionError(
        "no pip on this machine to fetch the step image's wheels with",
        why="the image is built offline from wheels that pip downloads or builds on the host",
        fix="install pip (Debian: apt-get install python3-pip; or `python -m ensurepip`)",
    )


# -- code units -------------------------------------------------------------------------------


def code_unit(module: str, source_roots: list[str]) -> tuple[str, Path] | None:
    """``(path inside the code folder, host path)`` to copy so that ``module`` imports in the
    container: its outermost regular package, or the module file itself. None for orcakit and
    for installed libraries (those come from requirements)."""
    parts = module.split(".")
    if parts[0] == "orcakit":
        return None
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        origin, is_package = _locate(name, source_roots)
        if origin is None and is_package:
            continue  # a namespace package: keep going down to a regular one
        if origin is None:
            raise SubmissionError(
                f"cannot find the step module {module!r} on this machine to copy it into the step image",
                fix="run the pipeline from where its module imports, or list its folder in the orchestrator's code_paths",
            )
        if _installed(origin):
            return None
        prefix = "/".join(parts[: depth - 1])
        if is_package:
            return (f"{prefix}/{parts[depth - 1]}" if prefix else parts[depth - 1]), origin.parent
        return (f"{prefix}/{origin.name}" if prefix else origin.name), origin
    return None


def _locate(name: str, source_roots: list[str]) -> tuple[Path | None, bool]:
    """``(file, is_package)`` of a module: its ``__init__.py`` for a regular package, None for a
    namespace package."""
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__spec__", None) is not None:
        spec = module.__spec__
    else:
        added = [root for root in source_roots if root not in sys.path]
        sys.path[:0] = added
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        finally:
            for root in added:
                sys.path.remove(root)
    if spec is None:
        return None, False
    is_package = spec.submodule_search_locations is not None
    origin = spec.origin if spec.has_location else None
    return (Path(origin).resolve() if origin else None), is_package


def _installed(path: Path) -> bool:
    text = str(path)
    if "site-packages" in path.parts or "dist-packages" in path.parts:
        return True
    stdlib = sysconfig.get_paths().get("stdlib")
    return bool(stdlib) and text.startswith(str(Path(stdlib).resolve()) + os.sep)


def _walk(path: Path) -> Iterable[tuple[str, Path]]:
    """``(relative path, file)`` under ``path`` (or ``('', path)`` for a file), skipping caches,
    VCS folders and hidden files."""
    if path.is_file():
        yield "", path
        return
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".") and not d.endswith(".egg-info"))
        for name in sorted(files):
            if name.startswith(".") or name.endswith((".pyc", ".pyo")):
                continue
            file = Path(folder) / name
            yield str(file.relative_to(path)), file


# -- small helpers ----------------------------------------------------------------------------


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_manifest(folder: Path) -> None:
    manifest = {path.name: _file_digest(path) for path in sorted(folder.iterdir()) if path.suffix == ".whl"}
    if not manifest:
        raise SubmissionError(f"pip produced no wheels in {folder}")
    (folder / ".manifest.json").write_text(json.dumps(manifest, sort_keys=True, indent=1))


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _cached_wheels(folder: Path, fill: Callable[[Path], None]) -> dict[str, str]:
    """The manifest of a wheel-cache entry, filled once by ``fill(tmp)`` when missing. Under
    the entry's lock, filled in a temporary folder and renamed into place, so concurrent
    clients fill it once and a reader never sees half an entry."""
    with _locked(folder.parent, folder.name):
        if not (folder / ".manifest.json").is_file():
            tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
            try:
                fill(tmp)
                _write_manifest(tmp)
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(tmp, folder)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return json.loads((folder / ".manifest.json").read_text())


def _locked(folder: Path, name: str) -> FileLock:
    """An exclusive lock file per cache entry, so concurrent clients fill it once."""
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(folder / f".lock-{name}")


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = path.stat().st_size, 0
    info.mode = 0o755 if os.access(path, os.X_OK) and path.suffix not in (".py", ".whl") else 0o644
    with open(path, "rb") as handle:
        tar.addfile(info, handle)


def _tail(text: str, lines: int) -> str:
    kept = [line for line in text.splitlines() if line.strip() and "is ignored: it is neither a file nor a directory" not in line]
    return "\n".join(kept[-lines:])


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
