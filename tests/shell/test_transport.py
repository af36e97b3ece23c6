"""Transport pieces against tiny servers of the test's own (the simulator speaks plain http
and never redirects): TLS is always verified, --ca-bundle trusts a private CA, and API calls
never follow a redirect (so Authorization never travels to another host)."""
from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading

import pytest

from dap_core import Client, resolve_credentials
from dap_core.errors import AuthenticationFailed, ServiceError, ServiceUnavailable

from .conftest import Sleeper

CREDS = resolve_credentials(client_id="us-east-1#x", client_secret="the-secret")


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every login with `status` (and a Location); records what arrived."""

    status = 401
    location = None
    seen: list

    def do_POST(self):  # noqa: N802 - the base class's name
        self.seen.append((self.path, dict(self.headers)))
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b'{"error": {"type": "AuthenticationError", "uuid": "u-1", "message": "no"}}'
        self.send_response(self.status)
        if self.location:
            self.send_header("Location", self.location)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST  # noqa: N815

    def log_message(self, *args):
        pass


def serve(status=401, location=None, context=None):
    seen = []
    handler = type("Handler", (Recorder,), {"status": status, "location": location, "seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


def stop(server) -> None:
    server.shutdown()
    server.server_close()  # shutdown() only ends the loop: the listening socket stays open


@pytest.fixture
def tls_server(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                           "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                           "-keyout", str(key), "-out", str(cert)], capture_output=True)
    if made.returncode != 0:
        pytest.skip("openssl cannot make a certificate here")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server, seen = serve(context=context)
    yield "https://127.0.0.1:%d" % server.server_address[1], str(cert), seen
    stop(server)


def test_tls_is_verified_and_a_failure_is_not_retried(tls_server):
    url, _, seen = tls_server
    sleeper = Sleeper(cap=0)
    with Client(url, CREDS, sleep=sleeper) as dap:
        with pytest.raises(ServiceUnavailable) as caught:
            dap.list_tables()
    assert "TLS certificate" in str(caught.value) and "--ca-bundle" in str(caught.value)
    assert sleeper.delays == [] and seen == []


def test_a_ca_bundle_makes_a_private_ca_trusted(tls_server):
    url, cert, seen = tls_server
    with Client(url, CREDS, ca_bundle=cert) as dap:
        with pytest.raises(AuthenticationFailed) as caught:  # the server refuses everyone
            dap.list_tables()
    assert caught.value.uuid == "u-1" and len(seen) == 1


def test_api_calls_never_follow_a_redirect(tmp_path):
    elsewhere, seen_elsewhere = serve(status=200)
    target = "http://127.0.0.1:%d/ids/auth/login" % elsewhere.server_address[1]
    redirector, seen = serve(status=307, location=target)
    try:
        with Client("http://localhost:%d" % redirector.server_address[1], CREDS) as dap:
            with pytest.raises(ServiceError) as caught:
                dap.list_tables()
    finally:
        stop(redirector)
        stop(elsewhere)
    assert "redirect" in str(caught.value) or "307" in str(caught.value)
    assert caught.value.exit_status == 11
    assert len(seen) == 1 and seen_elsewhere == []


def test_a_download_url_refused_even_when_fresh_is_given_up_by_the_policy():
    """A 403 on a download asks for a fresh URL; one refused every time ends where the
    core's retry policy says (its attempts, exit 11), not in a loop."""
    from dap_core.policy import RetryPolicy
    from dap_core.shell.download import ObjectUrls, fetch_part
    from dap_core.shell.http import Transport

    refuser, seen = serve(status=403)
    asked = []

    def fetch(ids):
        asked.append(list(ids))
        return {i: "http://127.0.0.1:%d/part-%d.gz" % (refuser.server_address[1], len(asked))
                for i in ids}

    transport = Transport(retry_policy=RetryPolicy(max_attempts=4), sleep=Sleeper(cap=0))
    try:
        with pytest.raises(ServiceUnavailable) as caught:
            fetch_part(transport, ObjectUrls(fetch, ["o-1"]), "o-1", lambda data: None,
                       lambda: None, label="part 1 of 1")
    finally:
        transport.close()
        stop(refuser)
    assert caught.value.exit_status == 11 and "4 attempts" in str(caught.value)
    assert len(seen) == 4 and len(asked) == 4  # each refusal earned a fresh URL, bounded
    assert all("authorization" not in {k.lower() for k in headers} for _, headers in seen)
