"""Credentials: API keys, the Basic header, JWT payloads, expiry, and keeping secrets out of logs."""
import base64
import json
from datetime import datetime, timezone

import pytest
from hypothesis import assume, given, strategies as st

from dap_core.credentials import (
    Credentials, api_key_from_credentials, basic_authorization, credentials_from_api_key,
    describe, is_expiring, jwt_payload, parse_login_answer, redact, resolve_credentials,
)
from dap_core.errors import InvalidCredentials, MissingCredentials, UnexpectedAnswer

SECRET = "s3cr3t-Value"
KEY = base64.b64encode(("us-east-1#6f2c4d:" + SECRET).encode()).decode()

region_text = st.text(st.characters(blacklist_characters="#:", blacklist_categories=("Z", "C")),
                      min_size=1, max_size=20)
id_text = region_text
secret_text = st.text(st.characters(blacklist_categories=("Z", "C")), min_size=1, max_size=40)


def _jwt(payload):
    encode = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    return ".".join([encode(b'{"alg":"RS256"}'), encode(json.dumps(payload).encode()), "sig"])


def test_api_key_decodes_to_region_client_id_and_secret():
    credentials = credentials_from_api_key(KEY)
    assert credentials.client_id == "us-east-1#6f2c4d"
    assert credentials.client_secret == SECRET
    assert credentials.region == "us-east-1"


def test_an_api_key_pasted_with_line_breaks_is_the_same_key():
    assert credentials_from_api_key(KEY[:10] + "\n  " + KEY[10:] + "\n") == credentials_from_api_key(KEY)


def test_api_key_is_sent_unchanged_as_basic_credentials():
    assert basic_authorization(credentials_from_api_key(KEY)) == "Basic " + KEY


def test_client_id_and_secret_make_base64_basic_header():
    credentials = Credentials("us-east-1#abc", "xyz")
    assert basic_authorization(credentials) == "Basic " + base64.b64encode(b"us-east-1#abc:xyz").decode()


def test_a_client_id_without_region_has_none():
    assert Credentials("abc", "xyz").region is None


@pytest.mark.parametrize("key", ["not base64!", "YWJj=", base64.b64encode(b"no-colon-here").decode(),
                                 base64.b64encode(b"\xff\xfe:x").decode(),
                                 base64.b64encode(b"a#b:").decode()])
def test_a_bad_api_key_is_refused_without_echoing_it(key):
    with pytest.raises(InvalidCredentials) as info:
        credentials_from_api_key(key)
    assert key not in str(info.value) and key not in repr(info.value)
    assert info.value.exit_status == 3


@given(st.one_of(st.none(), region_text), id_text, secret_text)
def test_api_key_encode_decode_round_trips(region, client_id, secret):
    full_id = "%s#%s" % (region, client_id) if region else client_id
    credentials = Credentials(full_id, secret)
    decoded = credentials_from_api_key(api_key_from_credentials(credentials))
    assert (decoded.client_id, decoded.client_secret, decoded.region) == (full_id, secret, region)


@given(st.binary(max_size=60))
def test_any_bytes_as_key_decode_or_fail_cleanly_without_leaking(raw):
    key = base64.b64encode(raw).decode()
    try:
        credentials_from_api_key(key)
    except (InvalidCredentials, MissingCredentials) as exc:
        assume(len(key) > 3)
        assert key not in str(exc)


def test_repr_shows_the_client_id_only():
    credentials = credentials_from_api_key(KEY)
    assert repr(credentials) == "Credentials(client_id='us-east-1#6f2c4d')"
    assert SECRET not in describe(credentials) and KEY not in describe(credentials)
    assert "us-east-1#6f2c4d" in describe(credentials)


def test_client_id_and_secret_win_over_an_api_key():
    credentials = resolve_credentials(api_key=KEY, client_id="a#b", client_secret="c")
    assert credentials.client_id == "a#b" and credentials.api_key is None


def test_no_credentials_names_the_variables_and_options():
    with pytest.raises(MissingCredentials) as info:
        resolve_credentials()
    for name in ("DAP_CLIENT_ID", "DAP_CLIENT_SECRET", "DAP_API_KEY", "--api-key"):
        assert name in str(info.value)


def test_half_a_client_pair_is_missing_the_other_half():
    with pytest.raises(MissingCredentials, match="DAP_CLIENT_SECRET"):
        resolve_credentials(client_id="a#b")
    with pytest.raises(MissingCredentials, match="DAP_CLIENT_ID"):
        resolve_credentials(client_secret="x")


def test_a_client_secret_with_a_newline_is_refused_without_echoing_it():
    with pytest.raises(InvalidCredentials) as info:
        Credentials("a#b", "secret\n")
    assert "secret\n" not in str(info.value)


def test_jwt_payload_reads_exp_without_checking_the_signature():
    assert jwt_payload(_jwt({"exp": 1720863000, "sub": "x"}))["exp"] == 1720863000


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.!!!.c", "a." +
                                   base64.urlsafe_b64encode(b"[1]").decode() + ".c",
                                   "a.." + "c", None])
def test_a_malformed_token_is_an_unexpected_answer(token):
    with pytest.raises(UnexpectedAnswer):
        jwt_payload(token)


def test_is_expiring_uses_the_margin():
    assert not is_expiring(1000.0, 2000.0, margin=300)
    assert is_expiring(1700.0, 2000.0, margin=300)
    assert is_expiring(2100.0, 2000.0)
    assert is_expiring(1000.0, None)
    now = datetime(2024, 7, 13, tzinfo=timezone.utc)
    assert is_expiring(now, now.timestamp() + 60) and not is_expiring(now, now.timestamp() + 3600)


@given(st.floats(0, 2e9), st.floats(0, 2e9), st.floats(0, 3600))
def test_is_expiring_exactly_when_now_plus_margin_reaches_exp(now, exp, margin):
    assert is_expiring(now, exp, margin) == (now + margin >= exp)


def test_a_short_lived_token_is_renewed_at_a_quarter_of_its_life_not_300_s_early():
    # an hour-long token: 300 s before exp; a 10-minute one: 150 s before, not at once
    assert not is_expiring(1000.0, 4600.0, 300, issued_at=1000.0)
    assert is_expiring(4300.0, 4600.0, 300, issued_at=1000.0)
    assert not is_expiring(1000.0, 1600.0, 300, issued_at=1000.0)
    assert not is_expiring(1449.0, 1600.0, 300, issued_at=1000.0)
    assert is_expiring(1450.0, 1600.0, 300, issued_at=1000.0)


@given(st.floats(0, 2e9), st.floats(0, 2e9), st.floats(0, 3600), st.floats(0, 2e9))
def test_is_expiring_with_issued_at_never_sooner_than_a_quarter_of_the_lifetime(
        now, exp, margin, issued_at):
    expiring = is_expiring(now, exp, margin, issued_at=issued_at)
    if now >= exp:
        assert expiring  # an expired token is always renewed
    if not is_expiring(now, exp, margin):
        assert not expiring  # the lifetime only ever shortens the margin
    if expiring and exp > issued_at:
        assert now >= exp - (exp - issued_at) / 4.0 - 1e-6 * max(1.0, exp)


def test_the_login_answer_gives_the_token_and_its_exp_from_the_jwt_or_expires_in():
    token = _jwt({"exp": 1720863000})
    assert parse_login_answer({"access_token": token, "expires_in": 3600}, 0) == \
        (token, 1720863000.0)
    bare = _jwt({"sub": "x"})
    assert parse_login_answer({"access_token": bare, "expires_in": 1800}, 1000.0) == \
        (bare, 2800.0)
    now = datetime(2024, 7, 13, tzinfo=timezone.utc)
    assert parse_login_answer({"access_token": bare, "expires_in": 60}, now)[1] == \
        now.timestamp() + 60


@pytest.mark.parametrize("data", [None, [], {}, {"access_token": ""},
                                  {"access_token": "not-a-jwt", "expires_in": 60},
                                  {"access_token": _jwt({"sub": "x"})},
                                  {"access_token": _jwt({"exp": True}), "expires_in": "60"}])
def test_a_login_answer_without_a_token_or_an_expiry_is_unexpected(data):
    with pytest.raises(UnexpectedAnswer):
        parse_login_answer(data, 0.0)


# "\x00" stands in for the redaction marker below, so no secret may hold it
@given(st.text(), st.lists(st.text(st.characters(exclude_characters="\x00"), min_size=1),
                           max_size=4))
def test_redact_leaves_no_secret_behind(text, secrets):
    # a secret may also appear glued to others; build text that contains them all
    full = text + "".join(secrets) + text
    out = redact(full, secrets)
    for secret in secrets:
        if "*" not in secret and all(secret not in other or secret == other for other in secrets):
            assert secret not in out.replace("***", "\x00")


def test_redact_hides_the_secret_the_key_and_the_header_value():
    credentials = credentials_from_api_key(KEY)
    line = "login with %s, key %s, header %s" % (SECRET, KEY, basic_authorization(credentials))
    out = redact(line, credentials.secrets())
    assert SECRET not in out and KEY not in out and out.count("***") == 3
