{% include "config_" + cookiecutter.orchestrator_kind + ".py.j2" %}
