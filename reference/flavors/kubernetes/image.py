"""The default image-building strategy: the runtime's engine-neutral ImageRecipe built on this
machine's Docker engine, offline, with a content-hashed tag (an unchanged pipeline builds
nothing). Right when the cluster's nodes use this engine (the local test environment); on a real
cluster set ``image=`` or override :meth:`KubernetesOrchestrator.build_image` to push."""

from __future__ import annotations

import json
import tempfile
import time
from typing import Any

from orcakit import PipelineSnapshot, SubmissionError
from orcakit.reference import PROBE_SCRIPT, ImageRecipe, StepImage

FIX = ("build the parent image offline with scripts/testenv/ensure-base-image.sh, or set the orchestrator's image= to a "
       "step image the cluster's nodes can run")


def build_with_docker(config: Any, snapshot: PipelineSnapshot) -> StepImage:
    try:
        import docker
        from docker.errors import ImageNotFound
    except ImportError:
        raise SubmissionError("building the step image needs the Docker SDK (orcakit[docker])",
                              fix="pip install 'orcakit[docker,kubernetes]', or set the orchestrator's image=") from None
    started = time.monotonic()
    client = docker.from_env(timeout=config.api_timeout)
    from importlib.metadata import version

    # the orchestrator pod of every run (static too) talks to the API: the host's tested client
    requirements = [*config.requirements, f"kubernetes=={version('kubernetes')}"]
    recipe = ImageRecipe(requirements=requirements, code_paths=config.code_paths, wheel_cache=config.wheel_cache,
                         dynamic_extras=["kubernetes"])  # orchestrator pods talk to the API
    try:
        parent = client.images.get(config.parent_image)
    except ImageNotFound:
        raise SubmissionError(f"the parent image {config.parent_image!r} is not present on this machine's Docker engine",
                              fix=FIX) from None

    def probe() -> dict:
        output = client.containers.run(parent.id, command=["-c", PROBE_SCRIPT], entrypoint=["python3"], remove=True,
                                       network_disabled=True).decode(errors="replace")
        return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])

    target = recipe.target_python(parent.id, config.parent_image, probe, FIX)
    plan = recipe.plan(snapshot, target)
    try:
        client.images.get(plan.tag)
        return StepImage(plan.tag, target.python, False, time.monotonic() - started)
    except ImageNotFound:
        pass
    error = None
    with tempfile.TemporaryFile() as context:
        ImageRecipe.write_context(plan, context)
        context.seek(0)
        for chunk in client.api.build(fileobj=context, custom_context=True, tag=plan.tag, rm=True, forcerm=True, pull=False,
                                      network_mode="none", decode=True):
            if "error" in chunk:
                error = chunk.get("errorDetail", {}).get("message") or chunk["error"]
    if error:
        raise SubmissionError(f"building the step image {plan.tag} failed: {error}", fix=FIX)
    return StepImage(plan.tag, target.python, True, time.monotonic() - started)
