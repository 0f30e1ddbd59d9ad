"""``python -m orcakit.kubeapi [--port 0] [--kubeconfig PATH]``: see :mod:`.cli`."""

from .cli import main

if __name__ == "__main__":
    main()
