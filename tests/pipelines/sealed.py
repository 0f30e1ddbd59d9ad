"""Pipelines with secret-looking environment values (SPEC SEC-1).

Steps never return a secret (an output is stored in the artifact store, which the tests search
for secrets): they return SHA-256 digests of what they saw, which the tests compare with the
digests of the values they set.
"""

from __future__ import annotations

import hashlib
import os

from orcakit import get_step_context, pipeline, step

#: Distinctive values, so that a search of the stores for them finds nothing else. Hostile
#: characters on purpose: they must still reach the step byte for byte (ENV-2).
PIPELINE_SECRETS = {
    "API_KEY": "sealed-pipe-api-key-4f1d9c $HOME ${PATH} 'q' \"d\"\n\tline",
    "CK_TOKEN": "sealed-pipe-token-8b2e77 \u2603 ; rm -rf / #",
    "SHARED_PASSWORD": "sealed-pipe-shared-31aa0c",
}
STEP_SECRETS = {
    "SHARED_PASSWORD": "sealed-step-shared-c07e5d = overridden",
    "STEP_SECRET": "sealed-step-own-9e6a12 `id` $(echo x)",
}
PLAIN = {"PLAIN_SETTING": "visible in the snapshot"}
DYNAMIC_STEP_SECRETS = {"DYN_ACCESS_TOKEN": "sealed-dyn-step-token-5c3b90 \\n \u65e5\u672c"}


def digest(value: str | None) -> str | None:
    return None if value is None else hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


def _observe(keys: list[str]) -> dict:
    context = get_step_context()
    return {
        "env": {key: digest(os.environ.get(key)) for key in keys},
        # the run store this step attached to, as the step's snapshot says
        "run_store": digest(context.snapshot.stack.run_store),
        "pipeline_env": {key: digest(value) for key, value in context.snapshot.environment.items()},
    }


KEYS = sorted({*PIPELINE_SECRETS, *STEP_SECRETS, *PLAIN, *DYNAMIC_STEP_SECRETS})


@step(environment=STEP_SECRETS)
def with_step_secrets() -> dict:
    return _observe(KEYS)


@step
def pipeline_secrets_only(upstream: dict) -> dict:
    return _observe(KEYS)


@pipeline(environment={**PIPELINE_SECRETS, **PLAIN})
def sealed_static():
    pipeline_secrets_only(with_step_secrets())


@step(environment=DYNAMIC_STEP_SECRETS)
def dynamic_child() -> dict:
    return _observe(KEYS)


@step
def dynamic_plain_child(upstream: dict) -> dict:
    return _observe(KEYS)


@pipeline(dynamic=True, environment={**PIPELINE_SECRETS, **PLAIN})
def sealed_dynamic():
    dynamic_plain_child(dynamic_child())
