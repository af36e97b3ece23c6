"""ISO 8601 timestamps: a zone is required, everything lands in UTC, formatting round-trips."""
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from dap_core.errors import InvalidInput, InvalidTimestamp
from dap_core.timestamps import format_timestamp, format_timestamp_basic, parse_timestamp

UTC = timezone.utc

# every fixed offset a timestamp text can carry, to the minute
offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
aware = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31),
                     timezones=st.one_of(offsets, st.timezones()))


@pytest.mark.parametrize("text, expected", [
    ("2024-07-13T09:30:00Z", datetime(2024, 7, 13, 9, 30, tzinfo=UTC)),
    ("2024-07-13T09:30:00+02:00", datetime(2024, 7, 13, 7, 30, tzinfo=UTC)),
    ("2022-07-13T09:30:00+02:00", datetime(2022, 7, 13, 7, 30, tzinfo=UTC)),
    ("2024-07-13T09:30:00+0200", datetime(2024, 7, 13, 7, 30, tzinfo=UTC)),
    ("2024-07-13T09:30:00-05", datetime(2024, 7, 13, 14, 30, tzinfo=UTC)),
    ("2024-07-13T09:30:00.5Z", datetime(2024, 7, 13, 9, 30, 0, 500000, tzinfo=UTC)),
    ("2024-07-13T09:30:00.123456789Z", datetime(2024, 7, 13, 9, 30, 0, 123456, tzinfo=UTC)),
    ("2024-07-13t09:30z", datetime(2024, 7, 13, 9, 30, tzinfo=UTC)),
    ("2024-07-13 09:30:00Z", datetime(2024, 7, 13, 9, 30, tzinfo=UTC)),
    ("2024-07-13T23:30:00-01:00", datetime(2024, 7, 14, 0, 30, tzinfo=UTC)),
])
def test_contract_style_texts_parse_to_utc(text, expected):
    parsed = parse_timestamp(text)
    assert parsed == expected and parsed.tzinfo is UTC


def test_a_naive_timestamp_says_to_add_z_or_an_offset():
    with pytest.raises(InvalidTimestamp) as info:
        parse_timestamp("2024-07-13T09:30:00")
    assert "no zone" in str(info.value)
    assert "2024-07-13T09:30:00Z" in str(info.value) and "+02:00" in str(info.value)
    assert isinstance(info.value, InvalidInput) and info.value.exit_status == 3


def test_a_date_only_timestamp_is_refused_with_the_midnight_utc_spelling():
    with pytest.raises(InvalidTimestamp) as info:
        parse_timestamp("2024-07-13")
    assert "2024-07-13T00:00:00Z" in str(info.value)


@pytest.mark.parametrize("text", ["", "yesterday", "2024-02-30T00:00:00Z", "2024-07-13T24:00Z",
                                  "2024-07-13T09:30:60Z", "2024-07-13T09:30:00+24:00",
                                  "2024-07-13T09:30:00+02:0", "13/07/2024 09:30Z",
                                  "0001-01-01T00:00:00+00:01", "2024-07-13T09:30:00 Z"])
def test_malformed_or_impossible_texts_are_refused(text):
    with pytest.raises(InvalidTimestamp):
        parse_timestamp(text)


def test_format_is_utc_with_z_and_trimmed_fraction():
    assert format_timestamp(datetime(2024, 7, 13, 9, 30, tzinfo=UTC)) == "2024-07-13T09:30:00Z"
    assert format_timestamp(datetime(2024, 7, 13, 9, 30, 0, 120000, tzinfo=UTC)) == \
        "2024-07-13T09:30:00.12Z"
    plus2 = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2024, 7, 13, 11, 30, tzinfo=plus2)) == "2024-07-13T09:30:00Z"
    assert format_timestamp(datetime(999, 1, 2, tzinfo=UTC)) == "0999-01-02T00:00:00Z"


def test_basic_format_for_file_names():
    assert format_timestamp_basic(datetime(2024, 7, 13, 9, 30, tzinfo=UTC)) == "20240713T093000Z"


def test_formatting_a_naive_datetime_is_refused():
    with pytest.raises(InvalidTimestamp):
        format_timestamp(datetime(2024, 7, 13))


@settings(max_examples=300, deadline=None)
@given(aware)
def test_format_then_parse_gives_the_same_instant_in_any_zone(dt):
    text = format_timestamp(dt)
    parsed = parse_timestamp(text)
    # compared in UTC: PEP 495 makes a time in a DST fold unequal to any other zone's
    assert parsed == dt.astimezone(UTC) and parsed.utcoffset() == timedelta(0)
    assert format_timestamp(parsed) == text


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)),
       st.integers(-(23 * 60 + 59), 23 * 60 + 59), st.sampled_from(["%s:%s", "%s%s"]))
def test_a_text_with_any_offset_parses_to_the_instant_it_names(local, minutes, style):
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    text = local.isoformat() + sign + style % ("%02d" % hours, "%02d" % mins)
    expected = local.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    assert parse_timestamp(text) == expected
    assert parse_timestamp(text).tzinfo is UTC


@given(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)))
def test_any_naive_text_is_refused(local):
    with pytest.raises(InvalidTimestamp):
        parse_timestamp(local.isoformat())
