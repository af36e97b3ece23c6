"""Query values: formats, modes, names, table lists, and the JSON body of the contract."""
import re
import sys
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from dap_core.errors import InvalidInput, InvalidTimestamp
from dap_core.queries import (
    ALL, FORMATS, IncrementalQuery, SnapshotQuery, check_name, check_stdout_format, check_window,
    equivalent_since_texts, expand_tables, parse_format, parse_mode, parse_tables, wire_format,
)
from dap_core.timestamps import format_timestamp, parse_timestamp

UTC = timezone.utc
names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)


@pytest.mark.parametrize("text, expected", [("csv", "csv"), ("TSV", "tsv"), (" Json ", "json"),
                                            ("JSONL", "jsonl"), ("Parquet", "parquet")])
def test_formats_are_case_insensitive(text, expected):
    assert parse_format(text) == expected


def test_an_unknown_format_lists_the_known_ones():
    with pytest.raises(InvalidInput) as info:
        parse_format("xml")
    assert all(fmt in str(info.value) for fmt in FORMATS)


def test_json_is_framed_from_jsonl_and_parquet_typed_from_tsv():
    assert [wire_format(f) for f in FORMATS] == ["jsonl", "jsonl", "csv", "tsv", "tsv"]


def test_modes():
    assert parse_mode(None) is None and parse_mode("Condensed") == "condensed"
    with pytest.raises(InvalidInput):
        parse_mode("flat")


@pytest.mark.parametrize("name", ["Accounts", "1abc", "a-b", "a/b", "", "../etc", "a b", "ä"])
def test_bad_names_are_refused(name):
    with pytest.raises(InvalidInput):
        check_name("table", name)


def test_a_name_in_upper_case_suggests_the_lower_case_one():
    with pytest.raises(InvalidInput, match="did you mean 'accounts'"):
        check_name("table", "Accounts")


def test_table_lists_drop_duplicates_and_keep_order():
    assert parse_tables("users, accounts,users,,courses") == ("users", "accounts", "courses")
    assert parse_tables("all") is ALL and parse_tables("ALL") is ALL


@pytest.mark.parametrize("text", ["", " , ", "a,all", "a,B"])
def test_bad_table_lists_are_refused(text):
    with pytest.raises(InvalidInput):
        parse_tables(text)


@given(st.lists(names, min_size=1, max_size=8))
def test_parsed_table_lists_are_the_first_occurrences_in_order(tables):
    tables = [t for t in tables if t != "all"] or ["a"]
    parsed = parse_tables(",".join(tables))
    assert parsed == tuple(dict.fromkeys(tables))


def test_expand_all_and_refuse_unknown_tables_with_a_suggestion():
    assert expand_tables(ALL, ["accounts", "users"]) == ("accounts", "users")
    assert expand_tables(("users",), ["accounts", "users"]) == ("users",)
    with pytest.raises(InvalidInput, match="did you mean accounts"):
        expand_tables(("acounts",), ["accounts", "users"])


def test_snapshot_body_is_format_and_optional_mode_and_nothing_else():
    assert SnapshotQuery("canvas", "accounts").body() == {"format": "jsonl"}
    assert SnapshotQuery("canvas", "accounts", format="CSV", mode="condensed").body() == \
        {"format": "csv", "mode": "condensed"}
    assert SnapshotQuery("canvas", "accounts", format="json").body() == {"format": "jsonl"}


def test_incremental_body_has_utc_since_and_optional_until():
    query = IncrementalQuery("canvas", "accounts", since="2022-07-13T09:30:00+02:00")
    assert query.body() == {"format": "jsonl", "since": "2022-07-13T07:30:00Z"}
    assert query.since == datetime(2022, 7, 13, 7, 30, tzinfo=UTC) and query.kind == "incremental"
    query = IncrementalQuery("canvas", "users", since="2024-07-13T09:30:00Z",
                             until="2024-07-14T00:00:00Z", format="tsv")
    assert query.body() == {"format": "tsv", "since": "2024-07-13T09:30:00Z",
                            "until": "2024-07-14T00:00:00Z"}
    assert "filter" not in query.body()


def test_until_must_be_after_since():
    with pytest.raises(InvalidInput, match="not after since"):
        IncrementalQuery("canvas", "accounts", since="2024-07-13T09:30:00Z",
                         until="2024-07-13T11:30:00+02:00")


def test_a_naive_since_names_the_option():
    with pytest.raises(InvalidTimestamp, match="since: timestamp"):
        IncrementalQuery("canvas", "accounts", since="2024-07-13T09:30:00")


def test_queries_are_immutable_and_validate_names():
    query = SnapshotQuery("canvas", "accounts")
    with pytest.raises(AttributeError):
        query.table = "users"
    with pytest.raises(InvalidInput):
        SnapshotQuery("Canvas", "accounts")
    assert query.kind == "snapshot"


@given(st.datetimes(timezones=st.just(UTC)), st.datetimes(timezones=st.just(UTC)))
def test_incremental_queries_exist_exactly_when_until_is_after_since(since, until):
    if until > since:
        assert IncrementalQuery("canvas", "t", since, until).until == until
    else:
        with pytest.raises(InvalidInput):
            IncrementalQuery("canvas", "t", since, until)


# -- since written another way (asking again after a deduplicated empty window) -------------

instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                        timezones=st.just(UTC))


RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)\Z")


def instant_of(text):
    """The instant an RFC 3339 text names, read by the standard library, not by dap_core."""
    assert RFC3339.match(text), text
    text = text.replace("Z", "+00:00")
    if sys.version_info < (3, 11):  # fromisoformat reads 3 or 6 digits of fraction only
        text = re.sub(r"\.(\d+)", lambda m: "." + m.group(1).ljust(6, "0"), text)
    return datetime.fromisoformat(text)


@given(instants)
def test_every_equivalent_since_is_the_same_instant_written_another_way(since):
    texts = equivalent_since_texts(since)
    assert texts and len(set(texts)) == len(texts)
    assert format_timestamp(since) not in texts
    for text in texts:
        assert instant_of(text) == since
        assert parse_timestamp(text) == since


@given(instants)
def test_there_are_hundreds_of_equivalent_texts_nearest_to_utc_first_in_a_fixed_order(since):
    """Runs that ask again pick among them, so that they seldom repeat one another's form;
    the ones written in UTC come first, then offsets growing away from it."""
    texts = equivalent_since_texts(since)
    assert len(texts) >= 100
    offsets = [abs(instant_of(text).utcoffset()) for text in texts]
    assert offsets == sorted(offsets) and offsets[0] == timedelta(0)
    assert equivalent_since_texts(since) == texts


@given(instants, st.integers(1, 10 ** 6))
def test_a_body_variant_changes_only_how_since_is_written(since, variant):
    query = IncrementalQuery("canvas", "accounts", since=since, format="csv", mode="condensed")
    canonical, other = query.body(), query.body(variant=variant)
    assert query.body(variant=0) == canonical
    assert other["since"] != canonical["since"]
    assert instant_of(other["since"]) == since
    assert {k: v for k, v in other.items() if k != "since"} == \
        {k: v for k, v in canonical.items() if k != "since"}
    assert query.body(variant=variant) == other  # the same variant, the same body


@settings(max_examples=20, deadline=None)  # hundreds of bodies an example
@given(instants, st.integers(1, 10 ** 6))
def test_consecutive_variants_go_through_every_equivalent_text_before_repeating_one(
        since, first):
    query = IncrementalQuery("canvas", "accounts", since=since)
    texts = equivalent_since_texts(since)
    written = [query.body(variant=first + n)["since"] for n in range(len(texts))]
    assert sorted(written) == sorted(texts)


def test_equivalent_since_texts_of_a_whole_second_and_of_microseconds():
    texts = equivalent_since_texts(datetime(2024, 7, 13, 9, 30, tzinfo=UTC))
    for text in ("2024-07-13T09:30:00+00:00", "2024-07-13T09:30:00.000Z",
                 "2024-07-13T09:30:00.000000+00:00", "2024-07-13T09:45:00+00:15",
                 "2024-07-12T19:30:00.000000-14:00", "2024-07-13T23:30:00.000+14:00"):
        assert text in texts
    texts = equivalent_since_texts(datetime(2024, 7, 13, 9, 30, 0, 123456, tzinfo=UTC))
    assert "2024-07-13T09:30:00.123456+00:00" in texts
    assert "2024-07-13T23:30:00.123456+14:00" in texts
    assert not any(".123456000" in text or ".123Z" in text for text in texts)  # no precision
    # added or lost


@given(st.one_of(st.none(), st.datetimes(timezones=st.just(UTC))),
       st.one_of(st.none(), st.datetimes(timezones=st.just(UTC))))
def test_check_window_refuses_exactly_an_until_not_after_since(since, until):
    if since is not None and until is not None and until <= since:
        with pytest.raises(InvalidInput, match="not after since"):
            check_window(since, until)
    else:
        check_window(since, until)


def test_what_may_go_to_stdout():
    assert check_stdout_format("CSV") == "csv" and check_stdout_format("jsonl", several=True)
    with pytest.raises(InvalidInput, match="Parquet cannot be written to stdout"):
        check_stdout_format("parquet")
    for fmt in ("json", "csv", "tsv"):
        with pytest.raises(InvalidInput, match="only as jsonl"):
            check_stdout_format(fmt, several=True)
