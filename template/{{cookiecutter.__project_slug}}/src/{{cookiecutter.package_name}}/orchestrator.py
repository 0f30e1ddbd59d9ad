{% include "orchestrator_" + cookiecutter.orchestrator_kind + ".py.j2" %}
