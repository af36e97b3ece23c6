"""Base URLs and download URLs are checked locally: malformed ones and plain http off
loopback are refused before any request."""
from __future__ import annotations

import pytest

from dap_core.errors import InvalidInput, UnexpectedAnswer
from dap_core.shell.http import check_base_url, check_object_url, is_loopback, loggable_url


@pytest.mark.parametrize("url,expected", [
    ("https://api-gateway.instructure.com", "https://api-gateway.instructure.com"),
    ("https://api-gateway.instructure.com/", "https://api-gateway.instructure.com"),
    ("http://127.0.0.1:8642", "http://127.0.0.1:8642"),
    ("http://localhost:1/prefix/", "http://localhost:1/prefix"),
    ("http://[::1]:99", "http://[::1]:99"),
])
def test_good_base_urls_are_normalised(url, expected):
    assert check_base_url(url) == expected


@pytest.mark.parametrize("url", [
    "", "api-gateway.instructure.com", "ftp://example.com", "https://", "https://host:99999",
    "https://host/?q=1", "https://user:pw@host", "https://ho st", "https://host#frag",
])
def test_malformed_base_urls_are_refused(url):
    with pytest.raises(InvalidInput) as caught:
        check_base_url(url)
    assert caught.value.exit_status == 3


def test_plain_http_off_loopback_needs_explicit_permission():
    with pytest.raises(InvalidInput, match="--allow-insecure-http"):
        check_base_url("http://api.example.com")
    assert check_base_url("http://api.example.com", allow_insecure_http=True) == \
        "http://api.example.com"


@pytest.mark.parametrize("host,loop", [("localhost", True), ("127.0.0.1", True),
                                        ("127.8.9.10", True), ("::1", True), ("[::1]", True),
                                        ("10.0.0.1", False), ("example.com", False),
                                        ("localhost.example.com", False)])
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop


def test_object_urls_must_be_https_unless_loopback():
    assert check_object_url("https://bucket.s3.amazonaws.com/p.gz?X-Amz-Signature=1")
    assert check_object_url("http://127.0.0.1:9/p.gz")
    with pytest.raises(UnexpectedAnswer):
        check_object_url("http://bucket.example.com/p.gz")
    with pytest.raises(UnexpectedAnswer):
        check_object_url("file:///etc/passwd")


def test_logged_urls_drop_query_and_user():
    assert loggable_url("https://u:p@h.example/a/b.gz?X-Amz-Signature=SECRET#x") == \
        "https://h.example/a/b.gz"
