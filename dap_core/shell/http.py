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
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Type
from urllib.parse import urlsplit

from .. import errors

__all__ = [
    "DEFAULT_BASE_URL", "Transport", "Reply", "check_base_url", "check_object_url",
    "is_loopback", "describe_network_error", "network_errors", "network_failure",
    "loggable_url", "tls_failure", "describe_answer", "log_retry",
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

def _host_port(url: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """(host, host:port) of ``url`` (never its path or query), or (None, None)."""
    if not url:
        return None, None
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None, None
    if not host:
        return None, None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    shown = "[%s]" % host if ":" in host else host
    return host, "%s:%d" % (shown, port)


def _cause(exc: BaseException) -> Optional[OSError]:
    """The OSError with an errno under a urllib3 error (socket.gaierror,
    ConnectionRefusedError ...), or None."""
    current: Optional[BaseException] = exc
    for _ in range(6):
        if current is None:
            return None
        if isinstance(current, OSError) and current.errno is not None:
            return current
        reason = getattr(current, "reason", None)
        current = reason if isinstance(reason, BaseException) else (
            current.__cause__ or current.__context__)
    return None


def _unwrap(exc: BaseException) -> BaseException:
    try:
        from urllib3 import exceptions as ux
    except ImportError:  # pragma: no cover
        return exc
    if isinstance(exc, ux.MaxRetryError) and exc.reason is not None:
        return exc.reason
    return exc


def _name_resolution_error(ux: Any) -> Tuple[Type[BaseException], ...]:
    """urllib3 2's NameResolutionError (urllib3 1.26 has none: its failed lookups are a
    NewConnectionError caused by socket.gaierror, which the callers test too)."""
    kind = getattr(ux, "NameResolutionError", None)
    return (kind,) if kind is not None else ()


def network_failure(exc: BaseException) -> str:
    """What kind of "no answer" ``exc`` is, for the core (``policy.FAILURES``):
    ``unresolved`` (the name does not exist; a temporary resolver failure is ``other``),
    ``refused``, ``timeout`` or ``other``."""
    import errno
    import socket
    from urllib3 import exceptions as ux
    exc = _unwrap(exc)
    cause = _cause(exc)
    if isinstance(exc, _name_resolution_error(ux)) or isinstance(cause, socket.gaierror):
        gone = {getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA", "EAI_FAIL")
                if hasattr(socket, name)}
        code = getattr(cause, "errno", None)
        return "unresolved" if code in gone or code is None else "other"
    if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == \
            errno.ECONNREFUSED:
        return "refused"
    if isinstance(exc, (ux.ConnectTimeoutError, ux.ReadTimeoutError)) and \
            not isinstance(exc, ux.NewConnectionError):
        return "timeout"
    if isinstance(exc, ux.NewConnectionError) and isinstance(cause, (socket.timeout,
                                                                    TimeoutError)):
        return "timeout"
    return "other"


def describe_network_error(exc: BaseException, url: Optional[str] = None,
                           read_timeout: Optional[float] = None) -> str:
    """A short description of a network failure naming the host and port of ``url`` (never
    its path or query: a pre-signed URL's signature lives there).

    urllib3 2 makes ``NewConnectionError`` and ``NameResolutionError`` subclasses of
    ``ConnectTimeoutError``: the most specific kinds are tested first."""
    host, where = _host_port(url)
    exc = _unwrap(exc)
    cause = _cause(exc)
    strerror = (getattr(cause, "strerror", None) or "").lower() or None
    try:
        from urllib3 import exceptions as ux
    except ImportError:  # pragma: no cover
        pass
    else:
        kind = network_failure(exc)
        if kind == "unresolved":
            return "could not resolve %s" % (host or "the host name")
        if isinstance(exc, _name_resolution_error(ux)):
            return "could not resolve %s (%s)" % (host or "the host name",
                                                  strerror or "the resolver failed")
        if kind == "refused":
            return "connection to %s refused" % (where or "the server")
        if isinstance(exc, ux.ReadTimeoutError):
            return "no answer from %s within %s" % (
                where or "the server", "%g s" % read_timeout if read_timeout else "the timeout")
        if kind == "timeout":
            return "connection to %s timed out" % (where or "the server")
        if isinstance(exc, ux.NewConnectionError):
            return "could not connect to %s%s" % (where or "the server",
                                                  ": " + strerror if strerror else "")
        if isinstance(exc, ux.SSLError):
            return "TLS failed with %s" % (where or "the server")
        if isinstance(exc, ux.ProtocolError):
            return "connection to %s broken%s" % (where or "the server",
                                                  " (%s)" % strerror if strerror else "")
    if isinstance(exc, OSError) and exc.strerror:
        return "%s%s" % (exc.strerror.lower(), " (%s)" % where if where else "")
    return type(exc).__name__ + (" (%s)" % where if where else "")


def network_errors() -> Tuple[Type[BaseException], ...]:
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
                 pool_size: int = 16) -> None:
        import urllib3  # imported on first use of the network, never by `dap --help`
        self.network_errors = network_errors()
        from .. import policy
        self._urllib3 = urllib3
        self._policy_module = policy
        if retry_policy is None:
            # a host that refuses or never answers costs a bounded time, whatever --timeout
            retry_policy = policy.RetryPolicy(
                network_deadline=policy.network_deadline_for(timeout[1]))
        self.retry_policy = retry_policy
        self.sleep = sleep
        self.rng = rng if rng is not None else random.Random()
        self.monotonic = monotonic
        self.clock = clock
        #: receives ``job(label, job_id, state)`` and ``wait(label, reason, seconds)`` events
        #: (``client.Progress``); None: nobody listens
        self.progress: Any = None
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

    def notify(self, event: str, *args: Any) -> None:
        """Tell the progress listener (if any, and if it has ``event``) what is going on."""
        method = getattr(self.progress, event, None)
        if method is not None:
            method(*args)

    def wait(self, label: str, reason: str, seconds: float) -> None:
        """Sleep ``seconds``, telling the progress listener why first."""
        self.notify("wait", label, reason, seconds)
        self.sleep(seconds)

    def close(self) -> None:
        self.pool.clear()

    # -- single attempts ----------------------------------------------------------------------
    def send(self, method: str, url: str, *, headers: Optional[Mapping[str, str]] = None,
             body: Optional[bytes] = None) -> Reply:
        """One API request, body read whole; network errors raise (urllib3.HTTPError/OSError)."""
        # headers given to urlopen replace the pool's: the User-Agent goes in each time
        sent = {"User-Agent": _user_agent()}
        sent.update(headers or {})
        resp = self.pool.urlopen(method, url, body=body, headers=sent,
                                 retries=False, redirect=False, preload_content=True,
                                 decode_content=True, timeout=self.timeout,
                                 enforce_content_length=True)
        return Reply(resp.status, resp.headers, resp.data or b"")

    def open_stream(self, url: str, *, headers: Optional[Mapping[str, str]] = None):
        """GET a download as a stream (``preload_content=False``) of the raw bytes on the wire
        (``decode_content=False``: a part is gzip; urllib3 must not unzip it for us).
        A body cut short of its Content-Length raises (``enforce_content_length=True``,
        urllib3 1.26's default is False: a cut connection would read as the end of the
        body).  The caller releases it.  Never sends credentials: only the headers given here."""
        sent = {"User-Agent": _user_agent()}
        sent.update(headers or {})
        return self.pool.urlopen("GET", url, headers=sent,
                                 retries=self.download_retries, redirect=True,
                                 preload_content=False, decode_content=False,
                                 timeout=self.timeout, enforce_content_length=True)

    # -- the policy loop ----------------------------------------------------------------------
    def answer_for(self, call: str, status: Optional[int], headers: Optional[Mapping[str, str]],
                   data: Optional[bytes], exc: Optional[BaseException] = None,
                   error_context: Optional[Mapping[str, Any]] = None,
                   url: Optional[str] = None):
        """The core's view of one outcome: ``policy.Answer``.  ``url`` (for a failure with
        no answer) names the host and port in the message, never the path or query."""
        policy = self._policy_module
        retry_after = policy.parse_retry_after(headers.get("Retry-After"), self.clock()) \
            if headers is not None else None
        failure = None
        error: Optional[errors.ServiceError]
        if status is None:
            failure = network_failure(exc) if exc is not None else None
            error = self.network_error(call, exc, url, failure)
        elif 200 <= status < 300:
            error = None
        else:
            error = errors.error_from_answer(status, data, **dict(error_context or {}))
        return policy.Answer(call, status, retry_after=retry_after, error=error,
                             failure=failure)

    def network_error(self, call: str, exc: Optional[BaseException], url: Optional[str],
                      failure: Optional[str]) -> errors.ServiceUnavailable:
        """The error of a request that got no answer: what happened, to which host, and
        what to do about it."""
        what = describe_network_error(exc, url, self.timeout.read_timeout) if exc else \
            "connection error or timeout"
        api = call != "download"
        message = ("could not reach DAP: %s" if api else "could not download a part: %s") % what
        if failure == "unresolved":
            hint = ("check the host name of the base URL (--base-url or DAP_API_URL)" if api
                    else "check this machine's DNS settings")
        elif failure == "refused" and api:
            hint = ("check the port of the base URL (--base-url or DAP_API_URL) and that the "
                    "service is up; try again later")
        elif failure == "timeout":
            hint = "try again later, or allow more time per request with --timeout SECONDS"
        else:
            hint = None
        return errors.ServiceUnavailable(message, hint)

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
            reply: Optional[Reply] = None
            try:
                reply = self.send(method, url, headers=headers() if headers else None, body=body)
            except self.network_errors as exc:
                tls = tls_failure(exc, label, url)
                if tls is not None:
                    raise tls from None
                log.debug("%s -> %s", label, describe_network_error(exc, url))
                answer = self.answer_for(call, None, None, None, exc, url=url)
            else:
                log.debug("%s -> %d (%.3f s)", label, reply.status, self.monotonic() - t0)
                answer = self.answer_for(call, reply.status, reply.headers, reply.data,
                                         error_context=error_context)
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
                log_retry(label, answer, decision.delay, attempt, self.retry_policy)
                self.wait(label, describe_answer(answer), decision.delay)
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


_NOT_TLS = ("wrong_version_number", "wrong version number", "record layer failure",
            "unknown protocol", "http_request", "packet length too long")
_BAD_BUNDLE = ("no certificate or crl found", "pem lib", "x509: ")


def tls_failure(exc: BaseException, label: str, url: Optional[str] = None
                ) -> Optional[errors.DapError]:
    """The error for a TLS failure (never retried: it will fail the same way again), telling
    apart a server that does not speak TLS (an https URL to a plain http port), a CA bundle
    that holds no certificate, and a certificate that does not verify; None when ``exc`` is
    another failure.  ``label`` says what was being done."""
    from urllib3 import exceptions as ux
    exc = _unwrap(exc)
    if not isinstance(exc, ux.SSLError):
        return None
    text = str(exc).lower()
    _, where = _host_port(url)
    where = where or "the server"
    if any(mark in text for mark in _NOT_TLS):
        return errors.ServiceUnavailable(
            "%s: %s does not speak TLS (an https URL for a plain http server?)" % (label, where),
            "check the scheme and port of the URL (--base-url or DAP_API_URL)")
    if any(mark in text for mark in _BAD_BUNDLE):
        return errors.InvalidInput(
            "%s: the CA bundle holds no usable certificate" % label,
            "pass a PEM file of CA certificates to --ca-bundle")
    return errors.ServiceUnavailable(
        "%s: the TLS certificate of %s does not verify%s" % (
            label, where, " (%s)" % _ssl_reason(exc) if _ssl_reason(exc) else ""),
        "if the host uses a private CA, pass its certificates with --ca-bundle FILE")


def _ssl_reason(exc: BaseException) -> str:
    """The short reason of an SSL error: ``certificate verify failed: self-signed ...``."""
    import re
    match = re.search(r"certificate verify failed: ([^(]*)", str(exc))
    return errors.one_line(match.group(1)).rstrip() if match else ""


def log_retry(label: str, answer, delay: float, attempt: int, retry_policy) -> None:
    """One line for a retry as it happens: a failure with no answer (refused, timed out) is
    a warning, shown at the default log level; an HTTP answer (5xx, 429) is info."""
    level = logging.WARNING if answer.status is None else logging.INFO
    log.log(level, "%s: %s; trying again in %.1f s (attempt %d of %d)", label,
            describe_answer(answer), delay, attempt, retry_policy.max_attempts)


def describe_answer(answer) -> str:
    """A failed attempt in a few words, for a log line: ``HTTP 503`` or the network error."""
    if answer.status is None:
        return str(answer.error.message) if answer.error is not None else "network error"
    return "HTTP %d" % answer.status
