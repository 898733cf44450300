"""A redis-server on another transport (TLS, a unix socket) with a password, and a TLS certificate for it."""

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

PASSWORD = "s3cret-pass"


def tls_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 that is its own CA, and its key (the ``openssl`` command, as
    setup installs it)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=vsim test Redis",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:TRUE"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class RedisOver:
    """A redis-server with a password on the transport ``arguments`` name; ``restart`` loses its data."""

    def __init__(self, tmp: Path, *arguments: str) -> None:
        self._command = ["redis-server", "--port", "0", "--save", "", "--appendonly", "no", "--dir", str(tmp),
                         "--requirepass", PASSWORD, *arguments]
        self._process = subprocess.Popen(self._command, stdout=subprocess.DEVNULL)

    def restart(self) -> None:
        self.stop()
        self._process = subprocess.Popen(self._command, stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


@contextlib.contextmanager
def redis_over(tmp: Path, *arguments: str) -> Iterator[RedisOver]:
    server = RedisOver(tmp, *arguments)
    try:
        yield server
    finally:
        server.stop()
