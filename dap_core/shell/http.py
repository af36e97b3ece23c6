"""HTTP transport: one urllib3 PoolManager per client, explicit timeouts, TLS always verified.

The shell sends; the core decides.  :meth:`Transport.request_with_policy` sends a request,
turns the outcome into a ``policy.Answer`` and asks ``policy.decide`` what to do: return,
sleep and send again, refresh the token, or give up with the error the core chose.  urllib3's
own retries are off (``retries=False``) so no retry happens that the core did not decide.

Sleeping and jitter are injected (``sleep``, ``rng``) so tests need not wait.

Security:
* https is verified (``CERT_REQUIRED``) against ``--ca-bundle``, else certifi when importable,
  else the system store.  Plain http is refused for hosts that are not loopback unless the
  caller allows it explicitly (``check_base_url``).
* API calls never follow redirects (a 3xx is an answer like any other), so the
  ``Authorization`` header is never forwarded to another host.
* Request headers are never logged; downloads are logged without their query string (a
  pre-signed URL's signature lives there).
"""
from __future__ import annotations

import ipaddress
import logging
import random
import time
from typing import Any, Callable, Dict, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from .. import errors

__all__ = [
    "DEFAULT_BASE_URL", "Transport", "Reply", "check_base_url", "check_object_url",
    "is_loopback", "describe_network_error", "network_errors",
    "loggable_url", "tls_failure", "describe_answer",
]

log = logging.getLogger("dap.http")

DEFAULT_BASE_URL = "https://api-gateway.instructure.com"

#: (connect, read) seconds
DEFAULT_TIMEOUT = (10.0, 60.0)


def _user_agent() -> str:
    try:
        from ..version import __version__
    except ImportError:  # pragma: no cover - the core always has it
        __version__ = "0"
    return "dap/%s" % __version__


# -- URLs ----------------------------------------------------------------------------------

def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    host = (host or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, allow_insecure_http: bool = False) -> str:
    """The base URL, normalised (no trailing slash), or ``InvalidInput`` saying what is wrong.

    Local checks only, before any request: an http(s) scheme, a host, a valid port, no query
    or fragment, and https unless the host is loopback or ``allow_insecure_http``.
    """
    text = (url or "").strip()
    hint = "pass a URL like %s (--base-url or DAP_API_URL)" % DEFAULT_BASE_URL
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise errors.InvalidInput("the base URL %r is malformed" % text, hint) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise errors.InvalidInput("the base URL %r is malformed: it needs http(s)://host" % text,
                                  hint)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise errors.InvalidInput(
            "the base URL %r must not carry a query, a fragment or a user name" % text, hint)
    if any(c.isspace() for c in text):
        raise errors.InvalidInput("the base URL %r is malformed: it contains blanks" % text, hint)
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure_http:
        raise errors.InvalidInput(
            "refusing plain http to %s: credentials would travel unencrypted" % parts.hostname,
            "use https, or pass --allow-insecure-http if you really mean it")
    del port
    return text.rstrip("/")


def check_object_url(url: str, allow_insecure_http: bool = False) -> str:
    """A pre-signed URL given by the service: http(s) only; plain http only on loopback."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise errors.UnexpectedAnswer("DAP gave a download URL that is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure_http:
        raise errors.UnexpectedAnswer(
            "DAP gave a plain http download URL for %s" % parts.hostname,
            "pass --allow-insecure-http to accept it")
    return url


def loggable_url(url: str) -> str:
    """``scheme://host/path`` without query or fragment (signatures live in the query)."""
    try:
        parts = urlsplit(url)
        return "%s://%s%s" % (parts.scheme, parts.netloc.rpartition("@")[2], parts.path)
    except ValueError:
        return "<url>"


# -- answers -------------------------------------------------------------------------------

def describe_network_error(exc: BaseException) -> str:
    """A short description of a network failure that never repeats a URL (it may be signed)."""
    try:
        from urllib3 import exceptions as ux
    except ImportError:  # pragma: no cover
        ux = None
    if ux is not None:
        if isinstance(exc, ux.MaxRetryError) and exc.reason is not None:
            exc = exc.reason
        if isinstance(exc, ux.ConnectTimeoutError):
            return "connection timed out"
        if isinstance(exc, (ux.ReadTimeoutError,)):
            return "read timed out"
        if isinstance(exc, ux.NewConnectionError):
            return "could not connect"
        if isinstance(exc, ux.SSLError):
            return "TLS verification failed (use --ca-bundle for a private CA)"
        if isinstance(exc, ux.ProtocolError):
            return "connection broken"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__


def network_errors() -> Tuple[type, ...]:
    """The exceptions that mean "the network failed" (urllib3 imported only when called)."""
    from urllib3.exceptions import HTTPError
    return (HTTPError, OSError)


class Reply:
    """A finished answer: status, headers (case-insensitive mapping), body bytes."""

    __slots__ = ("status", "headers", "data")

    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self.status = status
        self.headers = headers
        self.data = data

    def json(self) -> Any:
        import json
        try:
            return json.loads(self.data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise errors.UnexpectedAnswer("DAP answered with something that is not JSON") from None

    def __repr__(self) -> str:
        return "Reply(status=%d, %d bytes)" % (self.status, len(self.data))


class RefreshUrl(Exception):
    """Internal signal: the policy wants a fresh pre-signed URL for this download."""


# -- the transport ---------------------------------------------------------------------------

class Transport:
    """One urllib3 ``PoolManager`` with timeouts and verified TLS, plus the policy loop."""

    def __init__(self, *, ca_bundle: Optional[str] = None,
                 timeout: Tuple[float, float] = DEFAULT_TIMEOUT,
                 retry_policy: Any = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: Optional[random.Random] = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 clock: Callable[[], float] = time.time,
                 pool_size: int = 4) -> None:
        import urllib3  # imported on first use of the network, never by `dap --help`
        self.network_errors = network_errors()
        from .. import policy
        self._urllib3 = urllib3
        self._policy_module = policy
        self.retry_policy = retry_policy if retry_policy is not None else policy.RetryPolicy()
        self.sleep = sleep
        self.rng = rng if rng is not None else random.Random()
        self.monotonic = monotonic
        self.clock = clock
        self.timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        kwargs: Dict[str, Any] = {"cert_reqs": "CERT_REQUIRED"}
        if ca_bundle:
            kwargs["ca_certs"] = ca_bundle
        else:
            try:
                import certifi
                kwargs["ca_certs"] = certifi.where()
            except ImportError:
                pass  # urllib3 then loads the system store
        self.pool = urllib3.PoolManager(
            num_pools=pool_size, maxsize=pool_size, timeout=self.timeout, retries=False,
            headers={"User-Agent": _user_agent()}, **kwargs)
        # Downloads (no credentials attached) may follow a redirect; nothing else is retried
        # by urllib3.  remove_headers_on_redirect keeps its default (Authorization, Cookie).
        self.download_retries = urllib3.Retry(
            total=None, connect=0, read=0, status=0, other=0, redirect=5,
            raise_on_redirect=True, raise_on_status=False, respect_retry_after_header=False)

    def __repr__(self) -> str:
        return "Transport()"

    def close(self) -> None:
        self.pool.clear()

    # -- single attempts ----------------------------------------------------------------------
    def send(self, method: str, url: str, *, headers: Optional[Mapping[str, str]] = None,
             body: Optional[bytes] = None) -> Reply:
        """One API request, body read whole; network errors raise (urllib3.HTTPError/OSError)."""
        resp = self.pool.urlopen(method, url, body=body, headers=dict(headers or {}),
                                 retries=False, redirect=False, preload_content=True,
                                 decode_content=True, timeout=self.timeout)
        return Reply(resp.status, resp.headers, resp.data or b"")

    def open_stream(self, url: str, *, headers: Optional[Mapping[str, str]] = None):
        """GET a download as a stream (``preload_content=False``) of the raw bytes on the wire
        (``decode_content=False``: a part is gzip; urllib3 must not unzip it for us).
        The caller releases it.  Never sends credentials: only the headers given here."""
        return self.pool.urlopen("GET", url, headers=dict(headers or {}),
                                 retries=self.download_retries, redirect=True,
                                 preload_content=False, decode_content=False,
                                 timeout=self.timeout)

    # -- the policy loop ----------------------------------------------------------------------
    def answer_for(self, call: str, status: Optional[int], headers: Optional[Mapping[str, str]],
                   data: Optional[bytes], exc: Optional[BaseException] = None,
                   error_context: Optional[Mapping[str, Any]] = None):
        """The core's view of one outcome: ``policy.Answer``."""
        policy = self._policy_module
        retry_after = policy.parse_retry_after(headers.get("Retry-After"), self.clock()) \
            if headers is not None else None
        if status is None:
            error = errors.ServiceUnavailable(
                "could not reach DAP: %s" % describe_network_error(exc) if exc else
                "could not reach DAP (connection error or timeout)")
        elif 200 <= status < 300:
            error = None
        else:
            error = errors.error_from_answer(status, data, **dict(error_context or {}))
        return policy.Answer(call, status, retry_after=retry_after, error=error)

    def decide(self, answer, attempt: int, started: float, token_refreshed: bool = False):
        return self._policy_module.decide(
            answer, attempt, self.monotonic() - started, self.rng.random(),
            self.retry_policy, token_refreshed=token_refreshed)

    def request_with_policy(self, call: str, method: str, url: str, *,
                            headers: Optional[Callable[[], Mapping[str, str]]] = None,
                            body: Optional[bytes] = None,
                            refresh_token: Optional[Callable[[], None]] = None,
                            error_context: Optional[Mapping[str, Any]] = None,
                            what: str = "") -> Reply:
        """Send until the core says ``ok`` (return the reply) or ``give_up`` (raise its error).

        ``headers`` is a function so a refreshed token is picked up on the next attempt.
        """
        started = self.monotonic()
        attempt = 0
        token_refreshed = False
        label = what or "%s %s" % (method, loggable_url(url))
        while True:
            attempt += 1
            t0 = self.monotonic()
            try:
                reply: Optional[Reply] = self.send(method, url, headers=headers() if headers else None,
                                                   body=body)
                exc = None
            except self.network_errors as e:
                reply, exc = None, e
                tls = tls_failure(e, "%s: the TLS certificate of %s" % (
                    label, urlsplit(url).hostname))
                if tls is not None:
                    raise tls from None
            if reply is not None:
                log.debug("%s -> %d (%.3f s)", label, reply.status, self.monotonic() - t0)
                answer = self.answer_for(call, reply.status, reply.headers, reply.data,
                                         error_context=error_context)
            else:
                log.debug("%s -> %s", label, describe_network_error(exc))
                answer = self.answer_for(call, None, None, None, exc)
            if answer.status is not None and answer.status != 401:
                # the (renewed) token got past authentication: a later 401 is a new refusal
                # that earns a new token, not "a fresh token refused" (bounded by attempts)
                token_refreshed = False
            decision = self.decide(answer, attempt, started, token_refreshed)
            action = decision.action
            if action == "ok":  # 2xx only: the core gives up on a redirect (never followed)
                assert reply is not None
                return reply
            if action == "retry":
                log.info("%s: %s; retrying in %.1f s (attempt %d)", label,
                         describe_answer(answer), decision.delay, attempt)
                self.sleep(decision.delay)
                continue
            if action == "refresh_token" and refresh_token is not None:
                log.info("%s: token refused; getting a new one", label)
                token_refreshed = True
                refresh_token()
                if decision.delay:
                    self.sleep(decision.delay)
                continue
            error = decision.error or answer.error or errors.ServiceUnavailable(
                "%s failed" % label)
            raise error


def tls_failure(exc: BaseException, what: str) -> Optional[errors.ServiceUnavailable]:
    """The error for a TLS certificate that does not verify (``what`` names it), never
    retried: it will not verify on a retry either; None when ``exc`` is another failure."""
    from urllib3 import exceptions as ux
    if isinstance(exc, ux.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if not isinstance(exc, ux.SSLError):
        return None
    return errors.ServiceUnavailable(
        "%s does not verify" % what,
        "if the host uses a private CA, pass its certificates with --ca-bundle FILE")


def describe_answer(answer) -> str:
    """A failed attempt in a few words, for a log line: ``HTTP 503`` or the network error."""
    if answer.status is None:
        return str(answer.error.message) if answer.error is not None else "network error"
    return "HTTP %d" % answer.status
