"""The step image: orcakit, the steps' code and this flavor package, built from the parent image.

TODO(backend): this is where your backend's image build and push go. The starting point builds
on the local Docker engine, offline, from the runtime's engine-neutral
:class:`~orcakit.reference.ImageRecipe` (wheels fetched on this machine, a content-hashed tag, so
an unchanged pipeline builds nothing). A real backend builds the same recipe with its builder
(BuildKit, Kaniko, Cloud Build...) and pushes the tag to a registry its nodes pull from — or
takes a ready image from the config's ``image`` field.
"""

from __future__ import annotations

import importlib.metadata
import json
import tempfile
from pathlib import Path
from typing import Any

from orcakit import PipelineSnapshot, SubmissionError
from orcakit.reference import PROBE_SCRIPT, ImageRecipe, StepImage, TargetPython

#: The distribution that installed this package (its metadata carries the flavor's entry point).
DISTRIBUTION = "{{ cookiecutter.__project_slug }}"
PARENT_IMAGE_FIX = (
    "load or build a parent image with python3 (>= 3.11) and pip on the engine (orcakit's "
    "scripts/testenv/ensure-base-image.sh builds orcakit/python-base:bookworm offline), or set the "
    "orchestrator's parent_image to such an image"
)


def flavor_code_paths() -> list[str]:
    """This package and its distribution's metadata, for the image's code folder.

    Inside a step container the step entrypoint rebuilds the orchestrator from the snapshot to
    read the run ID, so the flavor must be importable there *and* registered: the entry point
    lives in the ``.dist-info`` folder, which importlib.metadata finds on ``sys.path`` like the
    package (the recipe's code folder is put first on ``sys.path``)."""
    paths = [str(Path(__file__).resolve().parent)]
    distribution = importlib.metadata.distribution(DISTRIBUTION)
    metadata = next((file for file in distribution.files or [] if file.name == "METADATA"), None)
    if metadata is not None:
        paths.append(str(Path(distribution.locate_file(metadata)).resolve().parent))
    return paths


def ensure_image(client: Any, config: Any, snapshot: PipelineSnapshot) -> StepImage:
    """The snapshot's step image on the engine, built when no image with its tag exists."""
    if config.image:
        return StepImage(config.image, "python3", False, 0.0)
    recipe = ImageRecipe(requirements=config.requirements, code_paths=[*config.code_paths, *flavor_code_paths()],
                         wheel_cache=config.wheel_cache)
    plan = recipe.plan(snapshot, parent_python(client, config.parent_image, recipe))
    if _exists(client, plan.tag):
        return StepImage(plan.tag, plan.parent.python, False, 0.0)
    with tempfile.TemporaryFile() as context:
        ImageRecipe.write_context(plan, context)
        context.seek(0)
        error = None
        # network_mode="none": every wheel is in the context; the build needs no registry.
        for chunk in client.api.build(fileobj=context, custom_context=True, tag=plan.tag, rm=True, forcerm=True,
                                      pull=False, network_mode="none", decode=True):
            error = chunk.get("error", error)
    if error is not None or not _exists(client, plan.tag):
        raise SubmissionError(f"building the step image {plan.tag} failed: {error or 'no image was produced'}",
                              fix="fix what the error names (a requirement that does not install, a broken parent image)")
    return StepImage(plan.tag, plan.parent.python, True, 0.0)


def parent_python(client: Any, parent_image: str, recipe: ImageRecipe) -> TargetPython:
    """The parent image's Python (probed once per image ID, then cached by the recipe)."""
    from docker.errors import ImageNotFound

    try:
        image = client.images.get(parent_image)
    except ImageNotFound:
        raise SubmissionError(f"the parent image {parent_image!r} is not on the Docker engine",
                              why="the step image is built FROM it and is never pulled", fix=PARENT_IMAGE_FIX) from None

    def probe() -> dict:
        output = client.containers.run(image.id, ["python3", "-c", PROBE_SCRIPT], entrypoint=[], remove=True,
                                       network_disabled=True)
        return json.loads(output.decode().strip().splitlines()[-1])

    return recipe.target_python(image.id, parent_image, probe, PARENT_IMAGE_FIX)


def _exists(client: Any, tag: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(tag)
        return True
    except ImageNotFound:
        return False
