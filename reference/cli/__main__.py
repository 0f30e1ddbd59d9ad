"""``python -m orcakit.reference.cli``: the ``orcakit`` command."""

from . import main

main()
