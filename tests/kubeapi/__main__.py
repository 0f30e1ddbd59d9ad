"""``python -m tests.kubeapi``: the same as ``python -m orcakit.kubeapi``."""

from orcakit.kubeapi.cli import main

if __name__ == "__main__":
    main()
