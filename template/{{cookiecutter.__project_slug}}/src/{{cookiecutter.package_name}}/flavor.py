{% include "zenml_flavor.py.j2" %}
