"""Failures with no answer, over real loopback sockets: each is named for what happened and
to which host (urllib3 2 makes refused and unresolved connections subclasses of its connect
timeout), an unresolvable name fails at once, a refused connection or a server that never
answers costs a bounded time, and TLS failures say which kind they are (#12)."""
from __future__ import annotations

import contextlib
import socket
import time

import pytest

from dap_core import Client, resolve_credentials
from dap_core.errors import InvalidInput, ServiceUnavailable

CREDS = resolve_credentials(client_id="us-east-1#x", client_secret="the-secret-123")


class Clock:
    """sleep() returns at once but moves monotonic() on: retry loops run in no time, and
    their deadlines still see the time they would have taken."""

    def __init__(self) -> None:
        self.slept = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def monotonic(self) -> float:
        return time.monotonic() + sum(self.slept)


@contextlib.contextmanager
def refusing_port():
    """A port bound but not listening: connecting to it is refused (and no one else can
    take the port while the test runs)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@contextlib.contextmanager
def silent_port():
    """A port that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _resolves_as_unknown(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
    except socket.gaierror as exc:
        return exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None))
    return False


def test_a_refused_connection_names_the_host_and_port_and_is_bounded_in_time():
    clock = Clock()
    with refusing_port() as port:
        with Client("http://127.0.0.1:%d" % port, CREDS, sleep=clock.sleep,
                    monotonic=clock.monotonic) as dap:
            with pytest.raises(ServiceUnavailable) as caught:
                dap.list_tables()
    text = str(caught.value)
    assert "connection to 127.0.0.1:%d refused" % port in text and "timed out" not in text
    assert "gave up after" in text and "--base-url" in text
    assert clock.slept and sum(clock.slept) <= 20.0  # the refused deadline, not 8 attempts


def test_an_unresolvable_name_fails_at_once_naming_it():
    if not _resolves_as_unknown("nonexistent.invalid"):
        pytest.skip("this machine's resolver does not answer 'no such name' for .invalid")
    clock = Clock()
    with Client("https://nonexistent.invalid", CREDS, sleep=clock.sleep,
                monotonic=clock.monotonic) as dap:
        with pytest.raises(ServiceUnavailable) as caught:
            dap.list_tables()
    assert "could not resolve nonexistent.invalid" in str(caught.value)
    assert "timed out" not in str(caught.value)
    assert clock.slept == []  # not a single retry


def test_a_server_that_never_answers_is_given_up_after_the_timeout_and_a_bounded_total():
    clock = Clock()
    with silent_port() as port:
        with Client("http://127.0.0.1:%d" % port, CREDS, timeout=(0.2, 0.2),
                    sleep=clock.sleep, monotonic=clock.monotonic) as dap:
            with pytest.raises(ServiceUnavailable) as caught:
                dap.list_tables()
    text = str(caught.value)
    assert "no answer from 127.0.0.1:%d within 0.2 s" % port in text and "--timeout" in text
    assert sum(clock.slept) <= 30.0  # network_deadline_for(0.2)


def test_https_to_a_plain_http_server_is_a_protocol_mismatch_not_a_certificate(simulator):
    url = simulator.base_url.replace("http://", "https://")
    clock = Clock()
    with Client(url, CREDS, sleep=clock.sleep, monotonic=clock.monotonic) as dap:
        with pytest.raises(ServiceUnavailable) as caught:
            dap.list_tables()
    text = str(caught.value)
    assert "does not speak TLS" in text and "certificate" not in text
    assert clock.slept == []


@pytest.mark.parametrize("content", [b"this is not a PEM file\n", b""])
def test_a_ca_bundle_without_certificates_is_refused_before_any_request(simulator, tmp_path,
                                                                        content):
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(content)
    with pytest.raises(InvalidInput) as caught:
        Client(simulator.base_url.replace("http://", "https://"), CREDS, ca_bundle=str(bundle))
    assert "CA bundle" in str(caught.value) and "no usable CA certificate" in str(caught.value)
    assert simulator.requests == []
