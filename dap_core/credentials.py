"""Credentials, the Basic header they make, the token's payload, and what a log may show.

A secret (the client secret, an API key, the Basic header value, a token) never appears in
a repr or an error message: errors say which part is wrong, never its text.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, Iterable, Optional, Tuple, Union

from .errors import InvalidCredentials, MissingCredentials, UnexpectedAnswer

__all__ = [
    "Credentials", "credentials_from_api_key", "api_key_from_credentials",
    "resolve_credentials", "basic_authorization", "jwt_payload", "is_expiring",
    "parse_login_answer", "redact", "describe",
]

REDACTED = "***"

# region#id:secret; region optional. The id may not hold ':' (Basic auth splits on the first).
_KEY_PATTERN = re.compile(r"(?:(?P<region>[^#:\s]+)#)?(?P<id>[^#:\s]+):(?P<secret>\S+)")
_KEY_HINT = ("copy the key again from the Instructure Identity Services page, or use "
             "DAP_CLIENT_ID and DAP_CLIENT_SECRET instead")


def _no_controls(text: str) -> bool:
    return not any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


@dataclass(frozen=True)
class Credentials:
    """A client ID and secret; `api_key` is set when they came from an API key (sent as is)."""

    client_id: str
    client_secret: str = field(repr=False)
    api_key: Optional[str] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_secret:
            raise InvalidCredentials("the client %s is empty" % (
                "ID" if not self.client_id else "secret"), MissingCredentials.default_hint)
        if ":" in self.client_id:
            raise InvalidCredentials("the client ID holds a ':', which Basic authentication "
                                     "cannot carry", "check DAP_CLIENT_ID")
        for name, value in (("ID", self.client_id), ("secret", self.client_secret)):
            if not _no_controls(value):
                raise InvalidCredentials("the client %s holds a control character "
                                         "(a stray newline?)" % name,
                                         "check DAP_CLIENT_ID and DAP_CLIENT_SECRET")

    def __repr__(self) -> str:
        return "Credentials(client_id=%r)" % self.client_id

    @property
    def region(self) -> Optional[str]:
        """The part of the client ID before `#` (`us-east-1`), or None when there is none."""
        region, sep, _ = self.client_id.partition("#")
        return region if sep and region else None

    def secrets(self) -> Tuple[str, ...]:
        """Every text that must never reach a log, for `redact`."""
        basic = basic_authorization(self)[len("Basic "):]
        return tuple(s for s in (self.client_secret, self.api_key, basic) if s)


def credentials_from_api_key(key: str) -> Credentials:
    """Credentials from a DAP API key: base64 of `[region#]client-id:secret`."""
    text = "".join((key or "").split())  # a key pasted across lines is still the key
    if not text:
        raise MissingCredentials("the API key is empty")
    try:
        decoded = base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        raise InvalidCredentials("the API key is not valid base64 text", _KEY_HINT) from None
    match = _KEY_PATTERN.fullmatch(decoded)
    if match is None:
        raise InvalidCredentials("the API key does not decode to region#client-id:secret",
                                 _KEY_HINT)
    client_id = decoded[: match.start("secret") - 1]
    return Credentials(client_id, match.group("secret"), api_key=text)


def api_key_from_credentials(credentials: Credentials) -> str:
    """The API key that stands for these credentials (the one they came from, if any)."""
    if credentials.api_key:
        return credentials.api_key
    raw = "%s:%s" % (credentials.client_id, credentials.client_secret)
    return base64.b64encode(raw.encode("utf-8")).decode("ascii")


def resolve_credentials(api_key: Optional[str] = None, client_id: Optional[str] = None,
                        client_secret: Optional[str] = None) -> Credentials:
    """The credentials to use: a client ID and secret win over an API key."""
    if client_id or client_secret:
        if not client_id:
            raise MissingCredentials("a client secret was given but no client ID",
                                     "set DAP_CLIENT_ID or --client-id")
        if not client_secret:
            raise MissingCredentials("a client ID was given but no client secret",
                                     "set DAP_CLIENT_SECRET or --client-secret")
        return Credentials(client_id.strip(), client_secret.strip())
    if api_key:
        return credentials_from_api_key(api_key)
    raise MissingCredentials("no credentials")


def basic_authorization(credentials: Credentials) -> str:
    """The `Authorization` header value for the login call; an API key is sent unchanged."""
    return "Basic " + api_key_from_credentials(credentials)


def jwt_payload(token: str) -> Dict[str, Any]:
    """The payload of a JWT, unverified: the client only reads `exp`; the service verifies."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3 or not parts[1]:
        raise UnexpectedAnswer("the access token is not a JWT (expected three dot-separated parts)")
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        payload = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError):
        raise UnexpectedAnswer("the access token's payload is not base64url JSON") from None
    if not isinstance(payload, dict):
        raise UnexpectedAnswer("the access token's payload is not a JSON object")
    return payload


def _epoch(moment: Union[float, int, datetime]) -> float:
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)


def is_expiring(now: Union[float, datetime], exp: Union[float, datetime, None],
                margin: float = 300.0,
                issued_at: Union[float, datetime, None] = None) -> bool:
    """Whether a token expiring at `exp` is due for renewal at `now` (a missing exp: yes):
    `margin` seconds before `exp`, but, given `issued_at`, never sooner than a quarter of
    the token's lifetime before it (a short-lived token must not make every call log in)."""
    if exp is None:
        return True
    if issued_at is not None:
        margin = min(margin, max(0.0, (_epoch(exp) - _epoch(issued_at)) / 4.0))
    return _epoch(now) + margin >= _epoch(exp)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_login_answer(data: Any, now: Union[float, datetime]) -> Tuple[str, float]:
    """(access token, exp in epoch seconds) from the answer of `POST /ids/auth/login`: `exp`
    from the token's JWT payload, else `now + expires_in`; `UnexpectedAnswer` otherwise."""
    token = data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise UnexpectedAnswer("DAP's login answer holds no access token")
    exp: Any = jwt_payload(token).get("exp")  # JSON: checked by _number below
    if not _number(exp):
        expires_in = data.get("expires_in")
        if not _number(expires_in):
            raise UnexpectedAnswer("DAP's token says nothing of when it expires")
        exp = _epoch(now) + float(expires_in)
    return token, float(exp)


def redact(text: str, secrets: Iterable[Optional[str]]) -> str:
    """`text` with every occurrence of every secret replaced by `***`."""
    # longest first, so that a secret inside another (secret in its base64 key) cannot leave a tail
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def describe(credentials: Credentials) -> str:
    """What a log may show of credentials: the client ID and where they came from."""
    source = "API key" if credentials.api_key else "client ID and secret"
    return "client ID %s (from the %s; secret %s)" % (credentials.client_id, source, REDACTED)
