"""The error hierarchy: one exit-status table, one-line messages, the HTTP answer mapping."""
import inspect
import json

import pytest
from hypothesis import given, strategies as st

from dap_core import errors
from dap_core.errors import (
    EXIT_STATUSES, AuthenticationFailed, DapError, Forbidden, InvalidInput, JobFailed,
    NotFound, OutOfRange, RateLimited, ServiceError, ServiceUnavailable, SnapshotRequired,
    UnexpectedAnswer, UserError, ValidationFailed, error_from_answer, exit_status_for,
)


def _error_classes():
    return [obj for _, obj in inspect.getmembers(errors, inspect.isclass)
            if issubclass(obj, DapError)]


def _body(**fields):
    return json.dumps({"error": fields}).encode()


def test_exit_status_table_names_real_classes_with_that_status():
    for status, name, meaning in EXIT_STATUSES:
        assert meaning
        if name is not None:
            assert getattr(errors, name).exit_status == status


def test_every_error_class_exits_with_a_status_of_the_table_inherited_from_a_listed_class():
    listed = {name: status for status, name, _ in EXIT_STATUSES if name}
    for cls in _error_classes():
        ancestor = next(base for base in cls.__mro__ if base.__name__ in listed)
        if ancestor.__name__ != cls.__name__ and cls.exit_status != ancestor.exit_status:
            # a class with its own status must be listed itself
            assert cls.__name__ in listed, cls
        assert cls.exit_status in {status for status, _, _ in EXIT_STATUSES}


def test_exit_status_table_is_sorted_and_names_each_class_once():
    statuses = [status for status, _, _ in EXIT_STATUSES]
    names = [name for _, name, _ in EXIT_STATUSES if name]
    assert statuses == sorted(statuses) and len(names) == len(set(names))


def test_exit_status_for_interrupt_bug_and_dap_errors():
    assert exit_status_for(KeyboardInterrupt()) == 130
    assert exit_status_for(ValueError("bug")) == 1
    assert exit_status_for(SnapshotRequired("x")) == 9
    assert exit_status_for(UnexpectedAnswer("x")) == 11


def test_user_errors_are_not_service_errors():
    for cls in _error_classes():
        assert not (issubclass(cls, UserError) and issubclass(cls, ServiceError)), cls
    assert issubclass(InvalidInput, UserError)


@given(st.text(), st.one_of(st.none(), st.text()), st.one_of(st.none(), st.text()))
def test_str_is_always_one_line(message, hint, uuid):
    error = ServiceError(message, hint, uuid=uuid)
    assert "\n" not in str(error) and "\r" not in str(error)
    assert "\n" not in repr(error)


def test_str_is_message_then_uuid_then_hint():
    error = NotFound("table 'foo' not found", "list the tables", uuid="u-1")
    assert str(error) == "table 'foo' not found (uuid u-1): list the tables"
    assert str(DapError("plain")) == "plain"


def test_snapshot_required_from_the_type_word_with_table_in_hint():
    body = _body(type="SnapshotRequiredError", uuid="u-9", message="since is too old",
                 since="2024-01-01T00:00:00Z", until="2024-07-01T00:00:00Z")
    error = error_from_answer(400, body, namespace="canvas", table="accounts")
    assert type(error) is SnapshotRequired and error.exit_status == 9
    assert error.uuid == "u-9" and error.status == 400
    assert error.extra == {"since": "2024-01-01T00:00:00Z", "until": "2024-07-01T00:00:00Z"}
    assert "dap snapshot --table accounts" in str(error)
    assert "(uuid u-9)" in str(error)


def test_out_of_range_from_the_type_word_shows_the_permitted_range():
    body = _body(type="OutOfRange", uuid="u", message="until is in the future",
                 since="2024-01-01T00:00:00Z", until="2024-07-01T00:00:00Z")
    error = error_from_answer(400, body)
    assert type(error) is OutOfRange
    assert "2024-01-01T00:00:00Z" in str(error) and "2024-07-01T00:00:00Z" in str(error)


def test_out_of_range_from_since_until_extras_when_the_type_says_nothing():
    body = _body(type="BadRequest", uuid="u", message="no", since="a", until="b")
    assert type(error_from_answer(400, body)) is OutOfRange


def test_validation_failed_keeps_the_location():
    body = _body(type="ValidationError", uuid="u", message="bad timestamp",
                 location={"line": 1, "column": 30, "character": 29})
    error = error_from_answer(400, body)
    assert type(error) is ValidationFailed and error.exit_status == 7
    assert "line 1, column 30" in str(error)
    assert error.extra["location"]["character"] == 29


@pytest.mark.parametrize("status, cls, code", [
    (401, AuthenticationFailed, 4), (403, Forbidden, 5), (404, NotFound, 6),
    (429, RateLimited, 11), (500, ServiceUnavailable, 11), (503, ServiceUnavailable, 11),
    (418, ServiceError, 11), (None, ServiceUnavailable, 11),
])
def test_status_maps_to_class_and_exit_status(status, cls, code):
    error = error_from_answer(status, _body(type="x", uuid="u-1", message="m"))
    assert type(error) is cls and error.exit_status == code
    if status is not None:
        assert error.uuid == "u-1"


def test_a_redirect_is_an_unexpected_answer_that_is_not_followed():
    error = error_from_answer(307, None)
    assert type(error) is UnexpectedAnswer and error.exit_status == 11
    assert "redirect (HTTP 307)" in str(error) and "not follow" in str(error)


def test_not_found_names_kind_id_and_namespace():
    body = _body(type="NotFound", uuid="u-4", message="missing", id="foo", kind="table")
    error = error_from_answer(404, body, namespace="canvas")
    assert str(error).startswith("table 'foo' not found in namespace 'canvas' (uuid u-4)")
    assert error.extra == {"id": "foo", "kind": "table"}


@pytest.mark.parametrize("body", [None, b"", b"<html>504 Gateway Time-out</html>",
                                  b"[1,2]", b"\xff\xfe", b'{"error": "text"}'])
def test_a_missing_or_foreign_body_still_maps_by_status(body):
    error = error_from_answer(504, body)
    assert type(error) is ServiceUnavailable and error.uuid is None
    assert "504" in str(error)


@given(st.one_of(st.none(), st.integers(100, 599)), st.one_of(st.none(), st.binary()))
def test_any_answer_maps_to_a_service_error(status, body):
    error = error_from_answer(status, body)
    assert isinstance(error, ServiceError)
    assert "\n" not in str(error)


def test_job_failed_carries_the_job_error():
    error = JobFailed("the query job failed: boom", type="InternalError", uuid="u-7",
                      extra={"x": 1})
    assert error.exit_status == 10 and error.type == "InternalError" and error.uuid == "u-7"


def test_sigterm_exits_143_and_is_not_a_bug():
    assert exit_status_for(errors.Terminated()) == 143
    assert isinstance(errors.Terminated(), KeyboardInterrupt)


# -- messages that contradicted themselves or repeated themselves (#12) ---------------------------

def test_snapshot_required_says_take_a_new_snapshot_once():
    error = errors.error_from_answer(400, _body(
        type="SnapshotRequired", uuid="u", message="'since' is older than the 30 days of "
        "changes DAP keeps: take a new snapshot"), namespace="canvas", table="users")
    text = str(error)
    assert text.lower().count("take a new snapshot") == 1
    assert "dap snapshot --table users" in text and "30 days" in text


@pytest.mark.parametrize("namespace", ["catalog", "nowhere"])
def test_a_missing_namespace_is_never_listed_as_known(namespace):
    error = errors.error_from_answer(404, _body(type="NotFound", uuid="u", message="m",
                                                kind="namespace", id=namespace),
                                     namespace=namespace)
    hint = error.hint
    if namespace == "catalog":
        assert "one of DAP's namespaces" in hint and "does not serve it" in hint
    else:
        assert "check the name" in hint
    assert "known namespaces include" not in hint


def test_out_of_range_does_not_tell_a_future_since_to_leave_until_out():
    error = errors.error_from_answer(400, _body(type="OutOfRange", uuid="u",
                                                message="'since' lies after the latest data",
                                                since="2024-01-01T00:00:00Z",
                                                until="2024-02-01T00:00:00Z"))
    assert isinstance(error, errors.OutOfRange)
    assert "leave --until out" not in str(error) and "--since" in str(error)
