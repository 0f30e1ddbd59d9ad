"""moto in server mode: a real HTTP S3 endpoint on loopback for the tests and benchmarks of
flavors whose steps run elsewhere (docker, kubernetes), with dummy credentials."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

#: What boto3 (in the test process and, forwarded by the flavors, in steps) needs to talk to moto.
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def start_moto() -> tuple[subprocess.Popen, str]:
    """Start ``python -m moto.server`` on a free loopback port; (process, endpoint URL) once it answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    return proc, f"http://127.0.0.1:{port}"
