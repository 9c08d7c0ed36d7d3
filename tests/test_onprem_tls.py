"""The on-prem TLS site as a client meets it: nginx started with the rendered site (a throwaway
certificate, a free loopback port) speaks TLS 1.3 and TLS 1.2 with the suites of Mozilla's
intermediate profile only, refuses a client that offers nothing but CBC or non-forward-secret
suites, and sends HSTS even on an error answer (the service behind it is not running)."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import time

import pytest

from helpers import free_port, require_tool, stop_process
from onprem_bundle import derived_spec, render, throwaway_certificate

INTERMEDIATE = {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"}


@pytest.fixture(scope="module")
def tls_site(tmp_path_factory):
    """nginx serving the rendered site on 127.0.0.1:PORT, stopped by its pid."""
    tmp = tmp_path_factory.mktemp("tls-site")
    certificate, key = throwaway_certificate(tmp)
    port = free_port()
    spec = derived_spec(tmp / "spec", "hospital-diagnostics", {"targets": {"onprem": {"tls": {
        "certificate": str(certificate), "key": str(key), "server_names": ["diagnostics.hospital.internal"], "port": port}}}})
    site = render(spec, tmp / "out") / "hospital-diagnostics.nginx.conf"
    # On a host the site listens on every address; here, on loopback only (the one line changed).
    text, listens = re.subn(rf"^(\s*listen) {port} ssl", rf"\1 127.0.0.1:{port} ssl", site.read_text(), flags=re.M)
    assert listens == 1
    site.write_text(text)
    conf = tmp / "nginx.conf"
    conf.write_text(f"pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\ndaemon off;\nevents {{}}\n"
                    f"http {{\n    access_log off;\n    include {site};\n}}\n")
    nginx = subprocess.Popen([require_tool("nginx"), "-p", str(tmp), "-c", str(conf)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert nginx.poll() is None and time.monotonic() < deadline, (tmp / "error.log").read_text()
            time.sleep(0.1)
    yield port
    stop_process(nginx, timeout=10)


def client(maximum=ssl.TLSVersion.TLSv1_3, minimum=ssl.TLSVersion.TLSv1_2, ciphers: str | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # a throwaway self-signed certificate
    context.minimum_version, context.maximum_version = minimum, maximum
    if ciphers:
        context.set_ciphers(ciphers)
    return context


def handshake(port: int, context: ssl.SSLContext, request: bytes = b"") -> tuple[str, str, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="diagnostics.hospital.internal") as conn:
        answer = b""
        if request:
            conn.sendall(request)
            while b"\r\n\r\n" not in answer:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                answer += chunk
        return conn.version(), conn.cipher()[0], answer


def test_tls13_answers_with_hsts_even_when_the_service_is_down(tls_site) -> None:
    version, _, answer = handshake(tls_site, client(minimum=ssl.TLSVersion.TLSv1_3), b"GET /v2/health/ready HTTP/1.1\r\n"
                                   b"Host: diagnostics.hospital.internal\r\nConnection: close\r\n\r\n")
    head = answer.decode("latin-1").lower()
    assert version == "TLSv1.3" and head.startswith("http/1.1 502"), head
    assert "\r\nstrict-transport-security: max-age=63072000\r\n" in head, head
    assert "\r\nserver: nginx\r\n" in head  # server_tokens off: no version


def test_tls12_gets_an_intermediate_suite(tls_site) -> None:
    version, cipher, _ = handshake(tls_site, client(maximum=ssl.TLSVersion.TLSv1_2))
    assert version == "TLSv1.2" and cipher in INTERMEDIATE, cipher


@pytest.mark.parametrize("offered", ["ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA384",  # CBC
                                     "AES128-GCM-SHA256:AES256-GCM-SHA384"])  # RSA key exchange: no forward secrecy
def test_a_tls12_client_without_a_modern_suite_is_refused(tls_site, offered) -> None:
    context = client(maximum=ssl.TLSVersion.TLSv1_2, ciphers=offered)  # this side offers them
    assert {c["name"] for c in context.get_ciphers()} >= set(offered.split(":"))
    with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE|handshake failure"):
        handshake(tls_site, context)
