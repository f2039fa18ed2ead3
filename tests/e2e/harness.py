"""Start and stop the gateway as a real `mitmdump` process, for end-to-end tests.

Each gateway gets its own TOKENGATE_HOME and mitmproxy confdir under a temporary
directory, and writes its whole log (stdout and stderr) to mitmdump.log there.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


ROOT = Path(__file__).resolve().parents[2]
MITMDUMP = ROOT / ".venv" / "bin" / "mitmdump"
ADDON = ROOT / "addons" / "tokengate.py"
UPSTREAM_KEY = "sk-upstream-FAKE999"
STARTUP_SECONDS = 90
_LISTENING = re.compile(r"listening at (?:\[[^\]]+\]|[^\s:]+):(\d+)")


@dataclass
class Gateway:
    """A running mitmdump with the tokengate addon."""

    process: subprocess.Popen
    port: int
    home: Path
    confdir: Path
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ca_cert(self) -> Path:
        return self.confdir / "mitmproxy-ca-cert.pem"

    @property
    def recordings(self) -> Path:
        return self.home / "recordings"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def gateway_env(home: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env["TOKENGATE_HOME"] = str(home)
    env["TOKENGATE_UPSTREAM_KEY"] = UPSTREAM_KEY
    for name in ("TOKENGATE_VAULT", "TOKENGATE_KEY_FILE"):
        env.pop(name, None)
    return env


def launch_mitmdump(home: Path, confdir: Path, log_path: Path, args: list[str]) -> subprocess.Popen:
    command = [
        str(MITMDUMP),
        "-s", str(ADDON),
        "--listen-host", "127.0.0.1",
        "--listen-port", "0",
        "--set", f"confdir={confdir}",
        *args,
    ]
    log_file = log_path.open("ab")
    return subprocess.Popen(
        command, cwd=ROOT, env=gateway_env(home), stdout=log_file, stderr=subprocess.STDOUT
    )


def start_gateway(home: Path, args: list[str], confdir: Path | None = None) -> Gateway:
    """Start mitmdump and wait until the proxy listens and tokengate is ready."""
    home.mkdir(parents=True, exist_ok=True)
    confdir = confdir or home / "mitmproxy"
    log_path = home / "mitmdump.log"
    # A restarted gateway appends to the same log: read only what this run wrote.
    offset = log_path.stat().st_size if log_path.exists() else 0
    process = launch_mitmdump(home, confdir, log_path, args)
    deadline = time.monotonic() + STARTUP_SECONDS
    port = None
    while time.monotonic() < deadline:
        text = log_path.read_bytes()[offset:].decode(errors="replace")
        match = _LISTENING.search(text)
        if match and "tokengate ready" in text:
            port = int(match.group(1))
            break
        if process.poll() is not None:
            raise RuntimeError(f"mitmdump exited with {process.returncode}:\n{text}")
        time.sleep(0.1)
    if port is None:
        process.kill()
        raise RuntimeError(f"mitmdump did not start in time:\n{log_path.read_text()}")
    return Gateway(process, port, home, confdir, log_path, args)


def run_mitmdump_until_exit(home: Path, args: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run mitmdump that is expected to stop by itself; return exit code and log."""
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "mitmdump.log"
    process = launch_mitmdump(home, home / "mitmproxy", log_path, args)
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
        raise
    return code, log_path.read_text(errors="replace")


def write_self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """Write a certificate for 127.0.0.1 and localhost and its key; return both paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake model server")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "server.pem"
    key_path = directory / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
