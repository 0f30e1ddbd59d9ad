"""The step image on a Docker engine: the runtime's engine-neutral :class:`~orcakit.reference.ImageRecipe`
(requirements, wheels, code, content-hashed tag) built with the engine, offline.

The parent image's Python is read by running the recipe's probe in it once (cached by image ID);
an image whose tag exists is used as it is, so an unchanged pipeline builds nothing.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from typing import Any

from orcakit import PipelineSnapshot, SubmissionError
from orcakit.reference import PROBE_SCRIPT, ImagePlan, ImageRecipe, StepImage, TargetPython

from .config import DockerOrchestratorConfig

logger = logging.getLogger("orcakit.docker.image")

PARENT_IMAGE_FIX = (
    "build it offline with scripts/testenv/ensure-base-image.sh (Debian bookworm + python3 and pip, "
    "debootstrap piped into `docker import`), `docker load` it from a tarball, or set the orchestrator's "
    "parent_image to a local image that has python3 (>= 3.11) and pip"
)


class ImageBuilder:
    """Builds (or finds) the step image of a snapshot on one engine."""

    def __init__(self, client: Any, config: DockerOrchestratorConfig, address: str) -> None:
        self.client = client
        self.config = config
        self.address = address
        self.recipe = ImageRecipe(
            requirements=config.requirements, code_paths=config.code_paths, wheel_cache=config.wheel_cache,
            dynamic_extras=["docker"],  # the orchestration container starts sibling step containers
        )
        #: Build without the engine's layer cache (the benchmark's cold build).
        self.no_cache = False

    def ensure(self, snapshot: PipelineSnapshot) -> StepImage:
        started = time.monotonic()
        plan = self.plan(snapshot)
        if self._exists(plan.tag):
            return StepImage(plan.tag, plan.parent.python, False, time.monotonic() - started)
        logger.info("building step image %s from %s (%d requirements, %d code files)", plan.tag, self.config.parent_image,
                    len(plan.requirements), len(plan.code))
        self._build(plan)
        seconds = time.monotonic() - started
        logger.info("built step image %s in %.1fs", plan.tag, seconds)
        return StepImage(plan.tag, plan.parent.python, True, seconds)

    def plan(self, snapshot: PipelineSnapshot) -> ImagePlan:
        """Everything the image is made of, and the tag that hashes it (nothing is built)."""
        return self.recipe.plan(snapshot, self.parent())

    # -- the parent image --------------------------------------------------------------------

    def parent(self) -> TargetPython:
        from docker.errors import ImageNotFound

        try:
            image = self.client.images.get(self.config.parent_image)
        except ImageNotFound:
            raise SubmissionError(
                f"the parent image {self.config.parent_image!r} is not present on the Docker engine at {self.address}",
                why="the step image is built FROM it, and the docker flavor never pulls: no image registry is assumed to be reachable",
                fix=PARENT_IMAGE_FIX,
            ) from None
        return self.recipe.target_python(image.id, self.config.parent_image, lambda: self._probe(image.id), PARENT_IMAGE_FIX)

    def _probe(self, image_id: str) -> dict:
        from docker.errors import APIError

        name = self.config.parent_image
        container = None
        try:
            container = self.client.containers.create(
                image_id, command=["-c", PROBE_SCRIPT], entrypoint=["python3"], network_disabled=True,
                labels={"orcakit.managed": "true", "orcakit.role": "image-probe"},
            )
            container.start()
            code = container.wait(timeout=120)["StatusCode"]
            output = container.logs().decode(errors="replace")
        except APIError as exc:
            explanation = str(exc.explanation or exc)
            if "executable file not found" in explanation or "no such file or directory" in explanation:
                raise SubmissionError(
                    f"the parent image {name!r} has no python3: the engine could not start it ({_one_line(explanation)})",
                    why="steps run `python3 -m orcakit.reference.entrypoint` in the step image built FROM the parent image",
                    fix=PARENT_IMAGE_FIX,
                ) from None
            raise SubmissionError(f"could not run python3 in the parent image {name!r}: {_one_line(explanation)}", fix=PARENT_IMAGE_FIX) from None
        finally:
            if container is not None:
                try:
                    container.remove(force=True)
                except APIError:
                    pass
        lines = [line for line in output.splitlines() if line.startswith("{")]
        if code != 0 or not lines:
            raise SubmissionError(
                f"python3 in the parent image {name!r} did not run (exit code {code}): {_one_line(output)[-500:]}",
                fix=PARENT_IMAGE_FIX,
            )
        return json.loads(lines[-1])

    # -- building ----------------------------------------------------------------------------

    def _exists(self, tag: str) -> bool:
        from docker.errors import ImageNotFound

        try:
            self.client.images.get(tag)
            return True
        except ImageNotFound:
            return False

    def _build(self, plan: ImagePlan) -> None:
        from docker.errors import APIError

        with tempfile.TemporaryFile() as context:
            ImageRecipe.write_context(plan, context)
            context.seek(0)
            log: list[str] = []
            error = None
            try:
                for chunk in self.client.api.build(
                    fileobj=context, custom_context=True, tag=plan.tag, rm=True, forcerm=True, pull=False,
                    network_mode="none", decode=True, nocache=self.no_cache,
                ):
                    if "stream" in chunk:
                        lines = [line for line in chunk["stream"].splitlines() if line.strip()]
                        log.extend(lines)
                        for line in lines:
                            logger.debug("build %s: %s", plan.tag, line)
                    if "error" in chunk:
                        error = chunk.get("errorDetail", {}).get("message") or chunk["error"]
            except APIError as exc:
                error = str(exc.explanation or exc)
        if error is not None or not self._exists(plan.tag):
            tail = "\n".join(log[-25:])
            raise SubmissionError(
                f"building the step image {plan.tag} FROM {self.config.parent_image!r} failed: {_one_line(error or 'no image was produced')}\n"
                f"--- build log (last {min(len(log), 25)} lines) ---\n{tail}",
                why="the step image installs orcakit and the requirements from host-built wheels, offline",
                fix="fix what the build log shows (a requirement that does not install, a parent image whose pip is broken...)",
            )


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())
