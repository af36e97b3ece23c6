"""Credentials: API keys, the Basic header, JWT payloads, expiry, and keeping secrets out of
logs."""
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
    def encode(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    return ".".join([encode(b'{"alg":"RS256"}'), encode(json.dumps(payload).encode()), "sig"])


def test_api_key_decodes_to_region_client_id_and_secret():
    credentials = credentials_from_api_key(KEY)
    assert credentials.client_id == "us-east-1#6f2c4d"
    assert credentials.client_secret == SECRET
    assert credentials.region == "us-east-1"


def test_an_api_key_pasted_with_line_breaks_is_the_same_key():
    wrapped = KEY[:10] + "\n  " + KEY[10:] + "\n"
    assert credentials_from_api_key(wrapped) == credentials_from_api_key(KEY)


def test_api_key_is_sent_unchanged_as_basic_credentials():
    assert basic_authorization(credentials_from_api_key(KEY)) == "Basic " + KEY


def test_client_id_and_secret_make_base64_basic_header():
    credentials = Credentials("us-east-1#abc", "xyz")
    expected = "Basic " + base64.b64encode(b"us-east-1#abc:xyz").decode()
    assert basic_authorization(credentials) == expected


def test_a_client_id_without_region_has_none():
    assert Credentials("abc", "xyz").region is None


@pytest.mark.parametrize("key", ["not base64!", "YWJj=",
                                 base64.b64encode(b"no-colon-here").decode(),
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


moments = st.integers(0, 2 * 10 ** 9)  # whole seconds: exact as floats
margins = st.integers(0, 3600)
issued = st.one_of(st.none(), moments)


@given(moments, moments, margins, issued, st.floats(0, 1e6))
def test_once_expiring_a_token_stays_expiring(now, exp, margin, issued_at, later):
    """Monotone in now: time only brings a renewal closer."""
    assert is_expiring(now, exp, margin, issued_at) <= is_expiring(now + later, exp, margin,
                                                                  issued_at)


@given(moments, moments, margins, st.integers(0, 3600), issued)
def test_a_larger_margin_never_renews_later(now, exp, margin, more, issued_at):
    assert is_expiring(now, exp, margin, issued_at) <= is_expiring(now, exp, margin + more,
                                                                  issued_at)


@given(moments, margins, st.floats(0, 1e6), issued)
def test_an_expired_token_is_always_expiring(exp, margin, after, issued_at):
    assert is_expiring(exp + after, exp, margin, issued_at)


@given(moments, margins, st.floats(0.001, 1e6))
def test_a_token_is_expiring_from_margin_seconds_before_exp_and_not_sooner(exp, margin, early):
    assert is_expiring(exp - margin, exp, margin)
    assert not is_expiring(exp - margin - early, exp, margin)


def test_a_short_lived_token_is_renewed_at_a_quarter_of_its_life_not_300_s_early():
    # an hour-long token: 300 s before exp; a 10-minute one: 150 s before, not at once
    assert not is_expiring(1000.0, 4600.0, 300, issued_at=1000.0)
    assert is_expiring(4300.0, 4600.0, 300, issued_at=1000.0)
    assert not is_expiring(1000.0, 1600.0, 300, issued_at=1000.0)
    assert not is_expiring(1449.0, 1600.0, 300, issued_at=1000.0)
    assert is_expiring(1450.0, 1600.0, 300, issued_at=1000.0)


@given(moments, margins, moments, st.floats(0, 2e9))
def test_knowing_when_it_was_issued_only_ever_renews_later(now, margin, issued_at, exp):
    assert is_expiring(now, exp, margin, issued_at=issued_at) <= is_expiring(now, exp, margin)


@given(moments, margins, st.integers(1, 10 ** 6), st.floats(0.001, 1e6))
def test_a_token_is_never_renewed_sooner_than_a_quarter_of_its_life_before_exp(
        issued_at, margin, life, early):
    exp = issued_at + life
    assert not is_expiring(exp - life / 4 - early, exp, margin, issued_at=issued_at)


@given(moments, margins, st.integers(0, 10 ** 6))
def test_a_long_lived_token_is_renewed_margin_seconds_before_exp_as_without_issued_at(
        issued_at, margin, extra):
    exp = issued_at + 4 * margin + extra  # a quarter of its life is at least the margin
    assert is_expiring(exp - margin, exp, margin, issued_at=issued_at)


@given(moments, st.integers(1, 3600), st.data())
def test_a_short_lived_token_is_renewed_from_three_quarters_of_its_life(issued_at, margin, data):
    life = data.draw(st.integers(1, 4 * margin))  # a quarter of its life is within the margin
    exp = issued_at + life
    assert is_expiring(issued_at + 0.75 * life, exp, margin, issued_at=issued_at)


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
