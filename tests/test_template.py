"""The flavor template (``template/``): baked with pytest-cookies, the projects it makes, the
answers it refuses, and ``orcakit flavor new``.

Fast tests bake and read the result. The slow ones (one per orchestrator kind, as CI can
afford) install a baked project into a fresh virtual environment — orcakit from the session's
wheel, the project itself, nothing from this checkout — and run the project's own tests there,
which include ``pytest --flavor=NAME --conformance-profile=quick``. The container kind needs a
Docker engine and the parent image: it skips without them, but fails when
``ORCAKIT_REQUIRE_DOCKER=1`` (scripts/test), so CI cannot pass by skipping.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from orcakit.reference.cli import cli
from orcakit.template import TEMPLATE_DIR
from orcakit.template.hooks.pre_gen_project import problems
from tests.limits import WHOLE_SUITE_SECONDS

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template"
PARENT_IMAGE = "orcakit/python-base:bookworm"
#: Files every project has, and those of each kind.
COMMON = {
    ".github/workflows/certify.yml", ".gitignore", "README.md", "pyproject.toml",
    "src/{pkg}/__init__.py", "src/{pkg}/config.py", "src/{pkg}/orchestrator.py",
    "tests/test_conformance.py", "tests/test_flavor.py",
}
KIND_FILES = {"process": {"src/{pkg}/processes.py"}, "container": {"src/{pkg}/containers.py", "src/{pkg}/image.py"},
              "zenml": {"src/{pkg}/flavor.py"}}


def bake(cookies, **answers):
    return cookies.bake(extra_context=answers, template=str(TEMPLATE))


def files_of(project: Path) -> dict[str, str]:
    return {path.relative_to(project).as_posix(): path.read_text() for path in sorted(project.rglob("*")) if path.is_file()}


def expected_files(kind: str, package: str) -> set[str]:
    return {name.format(pkg=package) for name in COMMON | KIND_FILES[kind]}


def orcakit_imports(source: str) -> set[str]:
    """The orcakit modules a Python source imports."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] == "orcakit"}


def todo_blocks(text: str) -> list[str]:
    """Each ``TODO(backend)`` marker with the comment or docstring lines that follow it."""
    return [" ".join(text[match.start():].split("\n\n")[0].split()) for match in re.finditer(r"TODO\(backend\)", text)]


def leftovers(cookies_dir: Path) -> list[str]:
    """Every file or folder under pytest-cookies' output folder but the empty bake folders it
    makes itself before calling cookiecutter."""
    return [str(path) for path in cookies_dir.rglob("*") if not (path.is_dir() and re.fullmatch(r"bake\d+", path.name) and not any(path.iterdir()))]


# -- baking ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["process", "container"])
def test_the_defaults_bake_a_complete_project_built_on_the_public_api_only(cookies, kind):
    result = bake(cookies, orchestrator_kind=kind)
    assert result.exit_code == 0, result.exception
    project = result.project_path
    assert project.name == "orcakit-myorch"
    files = files_of(project)
    assert set(files) == expected_files(kind, "orcakit_myorch")
    for name, text in files.items():
        assert "{{" not in text and "{%" not in text, f"{name} holds unrendered template syntax"
        if name.endswith(".py"):
            imported = orcakit_imports(text)
            # Only the contract and the public runtime: never orcakit.reference._runtime, a
            # reference flavor or the CLI (the suite runs as a separate pytest process).
            assert imported <= {"orcakit", "orcakit.reference"}, f"{name} imports {sorted(imported)}"
    pyproject = tomllib.loads(files["pyproject.toml"])
    assert pyproject["project"]["entry-points"]["orcakit.flavors"] == {"myorch": "orcakit_myorch:MyorchFlavor"}
    assert pyproject["project"]["requires-python"] == ">=3.11"
    workflow = files[".github/workflows/certify.yml"]
    assert "pytest --flavor=myorch --certify --report-dir=cert" in workflow and "actions/upload-artifact" in workflow
    # Every place the author replaces is marked, and says what goes there.
    todo = {name: todo_blocks(text) for name, text in files.items() if name.startswith("src/")}
    for topic in ("own id of the run", "never a timestamp", "exactly", "memory units differ", "objects of the run"):
        assert any(topic in block.lower() for block in todo["src/orcakit_myorch/orchestrator.py"]), f"no TODO(backend) says: {topic}"
    assert any("REJECTED" in block for block in todo["src/orcakit_myorch/__init__.py"])  # what to declare


def test_hyphens_and_a_unicode_author_make_valid_names_and_metadata(cookies):
    author = 'Zoë "Zee" Ølsen-Łukasiewicz \\ 日本'
    result = bake(cookies, flavor_name="my-orch", author=author)
    assert result.exit_code == 0, result.exception
    project = result.project_path
    assert project.name == "orcakit-my-orch"
    assert set(files_of(project)) == expected_files("process", "orcakit_my_orch")
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["authors"] == [{"name": author}]
    assert pyproject["project"]["entry-points"]["orcakit.flavors"] == {"my-orch": "orcakit_my_orch:MyOrchFlavor"}
    declaration = (project / "src/orcakit_my_orch/__init__.py").read_text()
    assert 'RUN_ID_ENV = "MY_ORCH_RUN_ID"' in declaration and "class MyOrchFlavor(Flavor):" in declaration


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"flavor_name": "My Orch"}, "flavor_name='My Orch' is not a valid flavor name"),
        ({"flavor_name": "9lives"}, "flavor_name='9lives' is not a valid flavor name"),
        ({"flavor_name": "../escape"}, "flavor_name='../escape' is not a valid flavor name"),
        ({"flavor_name": "local"}, "flavor_name='local' is the name of a built-in orcakit flavor"),
        ({"flavor_name": "docker"}, "flavor_name='docker' is the name of a built-in orcakit flavor"),
        ({"flavor_name": "kubernetes"}, "flavor_name='kubernetes' is the name of a built-in orcakit flavor"),
        ({"package_name": "my-pkg"}, "package_name='my-pkg' is not an importable Python package name"),
        ({"package_name": "class"}, "package_name='class' is not an importable Python package name"),
        ({"package_name": "orcakit"}, "package_name='orcakit' clashes"),
        ({"class_prefix": "my orch"}, "class_prefix='my orch' cannot start a Python class name"),
        ({"min_python": "3.9"}, "min_python='3.9' is not a Python version orcakit runs on"),
    ],
)
def test_a_bad_answer_is_refused_with_its_fix_and_nothing_is_left_on_disk(cookies, tmpdir, capfd, answers, message):
    result = bake(cookies, **answers)
    assert result.exit_code != 0 and result.project_path is None
    err = capfd.readouterr().err  # the hook runs as a process of its own: its stderr
    assert message in err and "fix:" in err and "Nothing was generated." in err
    assert leftovers(Path(tmpdir) / "cookies") == []


def test_an_unknown_kind_is_refused_and_nothing_is_left_on_disk(cookies, tmpdir):
    result = bake(cookies, orchestrator_kind="vm")
    # cookiecutter itself refuses a choice outside the list, before the hook runs
    assert result.exit_code != 0 and "vm" in str(result.exception) and "container" in str(result.exception)
    assert leftovers(Path(tmpdir) / "cookies") == []


def test_the_hook_refuses_an_unknown_kind_itself():
    """The hook does not rely on cookiecutter's choice check (a replay file bypasses it)."""
    answers = {"flavor_name": "myorch", "package_name": "orcakit_myorch", "class_prefix": "Myorch", "min_python": "3.11"}
    assert problems({**answers, "orchestrator_kind": "process"}) == []
    [(what, _, fix)] = problems({**answers, "orchestrator_kind": "vm"})
    assert "orchestrator_kind='vm'" in what and "process, container, zenml" in fix


def test_the_zenml_kind_bakes_a_zenml_orchestrator_laid_out_as_zenmls_guide(cookies):
    """orchestrator_kind=zenml: config, orchestrator and flavor classes in ZenML's terms (steps
    1-3 of its custom-orchestrator guide), registered by source, no orcakit at run time, every
    pitfall of the guide addressed where the author reads the code."""
    result = bake(cookies, orchestrator_kind="zenml", flavor_name="acme")
    assert result.exit_code == 0, result.exception
    files = files_of(result.project_path)
    assert set(files) == expected_files("zenml", "orcakit_acme")
    for name, text in files.items():
        assert "{{" not in text and "{%" not in text, f"{name} holds unrendered template syntax"
        if name.startswith("src/") and name.endswith(".py"):
            assert not orcakit_imports(text), f"{name} imports orcakit: a ZenML orchestrator needs only ZenML"
            ast.parse(text)
    source = files["src/orcakit_acme/orchestrator.py"]
    assert "class AcmeOrchestrator(BaseOrchestrator)" in source and "def get_orchestrator_run_id" in source
    assert 'ENV_RUN_ID = "ACME_RUN_ID"' in source and "def submit_pipeline" in source and "def _stop_run" in source
    assert "class AcmeOrchestratorConfig(BaseOrchestratorConfig)" in files["src/orcakit_acme/config.py"]
    assert "class AcmeOrchestratorFlavor(BaseOrchestratorFlavor)" in files["src/orcakit_acme/flavor.py"]
    pyproject = tomllib.loads(files["pyproject.toml"])
    assert any(dep.startswith("zenml") for dep in pyproject["project"]["dependencies"])
    assert "zenml orchestrator flavor register orcakit_acme.flavor.AcmeOrchestratorFlavor" in files["README.md"]
    reference = "zenml:orcakit_acme.flavor:AcmeOrchestratorFlavor"
    assert reference in files["tests/test_conformance.py"] and reference in files[".github/workflows/certify.yml"]
    todo = [block.lower() for block in todo_blocks(source)]
    for topic in ("job id", "quotas", "ships the code"):
        assert any(topic in block for block in todo), f"no TODO(backend) says: {topic}"


# -- orcakit flavor new ----------------------------------------------------------------------------


def test_orcakit_flavor_new_makes_the_same_package_as_cookiecutter(cookies, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert TEMPLATE_DIR == TEMPLATE  # the CLI runs this very template
    result = CliRunner().invoke(cli, ["flavor", "new", "--no-input", "flavor_name=myorch", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "created" in result.output and "TODO(backend)" in result.output
    baked = bake(cookies, flavor_name="myorch")
    assert files_of(tmp_path / "out" / "orcakit-myorch") == files_of(baked.project_path)
    # cookiecutter's replay file went to a temporary folder: the project is all that was written
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["flavor_name=local"], "flavor_name='local' is the name of a built-in orcakit flavor"),
        (["flavor_name=My Orch"], "flavor_name='My Orch' is not a valid flavor name"),
        (["package_name=my-pkg"], "package_name='my-pkg' is not an importable Python package name"),
        (["orchestrator_kind=vm"], "orchestrator_kind='vm' is not one of its choices"),
        (["flavour_name=x"], "the flavor template asks no question 'flavour_name'"),
        (["myorch"], "answer 'myorch' is not KEY=VALUE"),
    ],
)
def test_orcakit_flavor_new_refuses_a_bad_answer_and_leaves_nothing(tmp_path, monkeypatch, arguments, message):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(cli, ["flavor", "new", "--no-input", *arguments, "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "fix:" in result.output
    assert "Traceback" not in result.output
    assert list(out.iterdir()) == [] and not (tmp_path / "home").exists()


def test_orcakit_flavor_new_says_how_to_install_cookiecutter_when_it_is_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cookiecutter.main", None)  # import fails as if not installed
    result = CliRunner().invoke(cli, ["flavor", "new", "--no-input", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "needs cookiecutter" in result.output and "pip install 'orcakit[template]'" in result.output


# -- installed and certified, one project per kind ----------------------------------------------------


def uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(found).exists():
        pytest.fail("these tests create virtual environments with uv; scripts/setup-venv installs it", pytrace=False)
    return found


def uv_install(python: Path, *arguments: str, constraints: Path) -> None:
    """Install into ``python``'s venv, at this environment's versions (``constraints``), from uv's
    cache first (no network); online only when the cache lacks a wheel."""
    base = [uv(), "pip", "install", "--quiet", "--python", str(python), "-c", str(constraints), *arguments]
    done = subprocess.run([*base, "--offline"], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        done = subprocess.run(base, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="session")
def constraints(tmp_path_factory) -> Path:
    """This environment's versions (orcakit itself excluded), so a fresh venv gets what was tested."""
    frozen = subprocess.run([uv(), "pip", "freeze", "--python", sys.executable], capture_output=True, text=True, check=True)
    lines = [line for line in frozen.stdout.splitlines() if line and not line.startswith(("-e", "orcakit"))]
    path = tmp_path_factory.mktemp("constraints") / "constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def require_docker() -> None:
    problem = None
    try:
        import docker

        docker.from_env(timeout=30).images.get(PARENT_IMAGE)
    except Exception as exc:  # noqa: BLE001 - no engine or no image: either way, no certification here
        problem = f"no Docker engine with the parent image {PARENT_IMAGE} ({' '.join(str(exc).split())[:200]}); scripts/test sets both up"
    if problem is not None:
        if os.environ.get("ORCAKIT_REQUIRE_DOCKER") == "1":
            pytest.fail(f"ORCAKIT_REQUIRE_DOCKER=1 but {problem}", pytrace=False)
        pytest.skip(problem)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["process", pytest.param("container", marks=pytest.mark.docker), "zenml"])
def test_a_baked_project_installs_in_a_fresh_venv_and_passes_its_tests_and_the_quick_suite(
    cookies_session, tmp_path_factory, orcakit_wheel, constraints, kind
):
    if kind == "container":
        require_docker()
    flavor = f"baked-{kind}"
    result = cookies_session.bake(extra_context={"flavor_name": flavor, "orchestrator_kind": kind}, template=str(TEMPLATE))
    assert result.exit_code == 0, result.exception
    project = result.project_path
    venv = tmp_path_factory.mktemp(f"venv-{kind}") / "venv"
    subprocess.run([uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    extras = {"container": "conformance,docker", "zenml": "conformance,zenml"}.get(kind, "conformance")
    # orcakit from the wheel (what users install), never from this checkout; the project with
    # setuptools from the venv (no build isolation: no index needed)
    uv_install(python, f"orcakit[{extras}] @ {orcakit_wheel.as_uri()}", "pytest", "setuptools", constraints=constraints)
    uv_install(python, "--no-build-isolation", "--no-deps", str(project), constraints=constraints)
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(python), "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider"], cwd=project, env=environment,
        capture_output=True, text=True, timeout=WHOLE_SUITE_SECONDS,
    )
    summary = done.stdout[-4000:] + done.stderr[-2000:]
    assert done.returncode == 0, summary
    # the conformance suite really ran against the flavor (it is not skipped, and it is the suite)
    assert "test_the_conformance_suite_passes_at_the_quick_profile PASSED" in done.stdout, summary
    if kind == "zenml":
        return  # a ZenML flavor is registered in ZenML (by source), not in orcakit's flavor list
    listed = subprocess.run([str(venv / "bin" / "orcakit"), "flavor", "list"], capture_output=True, text=True, env=environment)
    assert flavor in listed.stdout
