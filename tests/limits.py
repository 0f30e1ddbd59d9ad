"""Time limits the tests share.

A limit here is a safety net against a hang, never a time goal (those are measured in
benchmarks/ and the README's figures): it must hold for a correct run on a loaded CI machine, or
the verdict would depend on the load. CI's own limit (90 min for everything) is the outer one.
"""

#: A whole conformance suite run in a subprocess (a flavor, a template's project, a ZenML
#: orchestrator). The longest measured in a 4-worker scripts/test at load 6-10 took 1840 s
#: (zenml:local_docker at quick) and kubernetes quick 1512 s; at 1800 s a loaded runner killed
#: correct runs.
WHOLE_SUITE_SECONDS = 3600
