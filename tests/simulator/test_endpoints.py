"""Every endpoint of the contract answers with the contract's shapes and statuses."""
from __future__ import annotations

import base64
import gzip
import json
import re
import urllib.parse
import uuid

import pytest

from fixtures.simulator import encoders

from .api import Api, FakeClock, request

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def b64url_json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def assert_error(answer, status: int, type_: str, **extra):
    assert answer.status == status, answer
    assert answer.headers["Content-Type"] == "application/json"
    error = answer.error
    assert error["type"] == type_
    assert UUID.match(error["uuid"])
    assert isinstance(error["message"], str) and error["message"]
    for k, v in extra.items():
        assert error[k] == v, (k, error)
    return error


# ------------------------------------------------------------------------------- login


def test_login_issues_a_signed_jwt_with_exp(make_simulator):
    clock = FakeClock()
    sim = make_simulator(clock=clock, token_ttl=1800)
    answer = Api(sim).login()
    assert answer.status == 200
    body = answer.json
    assert set(body) == {"access_token", "expires_in", "scope", "token_type"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 1800 and body["scope"]
    head, payload, signature = body["access_token"].split(".")
    assert b64url_json(head) == {"alg": "HS256", "typ": "JWT"}
    claims = b64url_json(payload)
    assert claims["sub"] == sim.client_id
    assert claims["iat"] == FakeClock.START and claims["exp"] == FakeClock.START + 1800
    assert re.match(r"^[A-Za-z0-9_-]{43}$", signature)


def test_login_accepts_both_credential_styles(simulator):
    api = Api(simulator)
    assert simulator.api_key == "dXMtZWFzdC0xI2RlbW86ZGVtby1zZWNyZXQ="
    from_id_secret = base64.b64encode(b"us-east-1#demo:demo-secret").decode()
    assert api.login(from_id_secret).status == 200
    assert api.login(simulator.api_key).status == 200


def test_credentials_are_configurable(make_simulator):
    sim = make_simulator(client_id="eu-west-1#abc", client_secret="s3cret")
    assert sim.api_key == base64.b64encode(b"eu-west-1#abc:s3cret").decode()
    api = Api(sim)
    assert api.login(base64.b64encode(b"us-east-1#demo:demo-secret").decode()).status == 401


@pytest.mark.parametrize("header", [
    None,
    "Basic " + base64.b64encode(b"us-east-1#demo:wrong").decode(),
    "Basic " + base64.b64encode(b"us-east-1#other:demo-secret").decode(),
    "Basic not-base64!!",
    "Basic " + base64.b64encode(b"no-colon").decode(),
    "Bearer something",
])
def test_login_refuses_bad_credentials_with_401(simulator, header):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if header:
        headers["Authorization"] = header
    answer = request("POST", simulator.base_url + "/ids/auth/login",
                     b"grant_type=client_credentials", headers)
    assert_error(answer, 401, "AuthenticationError")


def test_login_needs_the_client_credentials_grant(simulator):
    answer = Api(simulator).login(body=b"grant_type=password")
    assert_error(answer, 400, "ValidationError")
    assert set(answer.error["location"]) == {"line", "column", "character"}


# ------------------------------------------------------------------------------- tokens


def test_api_calls_accept_bearer_and_x_instauth(simulator):
    assert Api(simulator).tables().status == 200
    assert Api(simulator, header="x-instauth").tables().status == 200


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer not.a-jwt"},
    {"Authorization": "Bearer a.b"},
    {"Authorization": "Basic " + base64.b64encode(b"us-east-1#demo:demo-secret").decode()},
    {"x-instauth": "!!!.???.###"},
])
def test_missing_or_malformed_tokens_get_401(simulator, headers):
    answer = request("GET", simulator.base_url + "/dap/query/canvas/table", None, headers)
    assert_error(answer, 401, "AuthenticationError")


def test_forged_tokens_get_401(simulator):
    token = Api(simulator).token
    head, payload, signature = token.split(".")
    claims = b64url_json(payload)
    claims["exp"] += 3600
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    none_head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    for forged in (f"{head}.{forged_payload}.{signature}", f"{head}.{payload}.{flipped}",
                   f"{none_head}.{payload}."):
        answer = request("GET", simulator.base_url + "/dap/query/canvas/table", None,
                         {"Authorization": "Bearer " + forged})
        assert_error(answer, 401, "AuthenticationError")


def test_a_token_from_another_simulator_is_forged(make_simulator):
    one, two = make_simulator(), make_simulator()
    token = Api(one).token
    answer = request("GET", two.base_url + "/dap/query/canvas/table", None,
                     {"Authorization": "Bearer " + token})
    assert_error(answer, 401, "AuthenticationError")


def test_expired_tokens_get_401(make_simulator):
    clock = FakeClock()
    sim = make_simulator(clock=clock, token_ttl=600)
    api = Api(sim)
    assert b64url_json(api.token.split(".")[1])["exp"] == clock() + 600
    clock.advance(599.5)
    assert api.tables().status == 200
    clock.advance(0.5)  # at exp
    assert_error(api.tables(), 401, "AuthenticationError")
    assert sim.fault_counts["refuse_token"] == 0


# ------------------------------------------------------------------------------- catalogue


def test_list_tables_of_both_namespaces(simulator):
    api = Api(simulator)
    answer = api.tables("canvas")
    assert answer.status == 200 and answer.headers["Content-Type"] == "application/json"
    assert answer.json == {"tables": ["accounts", "courses", "enrollments", "submissions", "users"]}
    assert api.tables("canvas_logs").json == {"tables": ["web_logs"]}


def test_unknown_namespace_and_table_are_404(simulator):
    api = Api(simulator)
    assert_error(api.tables("catalog"), 404, "NotFoundError", id="catalog", kind="namespace")
    assert_error(api.schema("canvas", "nope"), 404, "NotFoundError", id="nope", kind="table")
    assert_error(api.schema("nope", "accounts"), 404, "NotFoundError", id="nope", kind="namespace")
    assert_error(api.start("canvas", "nope", {"format": "jsonl"}), 404, "NotFoundError",
                 id="nope", kind="table")


def _types(schema: dict, found: set) -> set:
    t = schema.get("type")
    if t == "string":
        found.add("date-time" if schema.get("format") == "date-time" else
                  "enum" if "enum" in schema else "string")
    elif t == "object":
        found.add("nested object" if "properties" in schema else "free-form object")
        for sub in schema.get("properties", {}).values():
            _types(sub, found)
    else:
        found.add(t)
    return found


@pytest.mark.parametrize("namespace,table", [
    ("canvas", "accounts"), ("canvas", "users"), ("canvas", "courses"),
    ("canvas", "enrollments"), ("canvas", "submissions"), ("canvas_logs", "web_logs"),
])
def test_schema_is_a_json_schema_of_key_value_meta(simulator, namespace, table):
    answer = Api(simulator).schema(namespace, table)
    assert answer.status == 200
    body = answer.json
    assert set(body) == {"schema", "version"} and isinstance(body["version"], int)
    schema = body["schema"]
    assert schema["type"] == "object"
    assert list(schema["properties"]) == ["key", "value", "meta"]
    for part in ("key", "value", "meta"):
        sub = schema["properties"][part]
        assert sub["type"] == "object" and isinstance(sub["properties"], dict)
        assert set(sub["required"]) <= set(sub["properties"])
    assert schema["properties"]["meta"]["properties"]["action"]["enum"] == ["U", "D"]
    # described (incrementals carry it) but not required: a snapshot's records lack it
    assert schema["properties"]["meta"]["required"] == ["ts"]
    assert schema["properties"]["meta"]["properties"]["ts"]["format"] == "date-time"


def test_schemas_cover_every_type_of_the_contract(simulator):
    api = Api(simulator)
    found = set()
    for table in ("users", "submissions"):
        inner = api.schema("canvas", table).json["schema"]["properties"]["value"]
        per_table = set()
        for sub in inner["properties"].values():
            _types(sub, per_table)
        assert {"nested object", "array", "free-form object"} <= per_table, table
        found |= per_table
    assert {"integer", "number", "boolean", "string", "date-time", "enum", "nested object",
            "array", "free-form object"} <= found
    submissions = api.schema("canvas", "submissions").json["schema"]["properties"]["value"]
    assert "score" not in submissions["required"] and "user_id" in submissions["required"]


# ------------------------------------------------------------------------------- jobs


def test_job_goes_waiting_running_complete(make_simulator):
    clock = FakeClock()
    sim = make_simulator(clock=clock, job_wait=30, job_run=60)
    api = Api(sim)
    created = api.start("canvas", "accounts", {"format": "jsonl"})
    assert created.status == 200
    job = created.json
    assert set(job) == {"id", "status", "expires_at"}
    assert job["status"] == "waiting" and UUID.match(job["id"]) and ISO.match(job["expires_at"])
    clock.advance(29)
    assert api.job(job["id"]).json["status"] == "waiting"
    clock.advance(1)
    assert api.job(job["id"]).json["status"] == "running"
    clock.advance(59)
    assert api.job(job["id"]).json["status"] == "running"
    clock.advance(1)  # complete once its parts exist too, which takes real time
    job = api.wait(api.job(job["id"]).json)
    assert job["status"] == "complete"
    assert set(job) == {"id", "status", "expires_at", "objects", "schema_version", "at"}
    assert job["at"] == sim.frontier == "2026-01-01T03:00:00Z"
    assert job["schema_version"] == api.schema("canvas", "accounts").json["version"]
    assert all(set(o) == {"id"} and isinstance(o["id"], str) for o in job["objects"])


def test_job_expires_at_follows_the_ttl(make_simulator):
    clock = FakeClock()  # 2026-01-01T00:00:00Z
    sim = make_simulator(clock=clock, job_ttl=7200)
    clock.advance(0.25)
    job = Api(sim).start("canvas", "accounts", {"format": "jsonl"}).json
    assert job["expires_at"] == "2026-01-01T02:00:00.250Z"


def test_complete_incremental_echoes_since_and_answers_until(simulator):
    api = Api(simulator)
    since = "2026-01-01T01:00:00+01:00"  # = 00:00Z, kept as asked
    job = api.run("canvas", "users", {"format": "jsonl", "since": since})
    assert set(job) == {"id", "status", "expires_at", "objects", "schema_version", "since", "until"}
    assert job["since"] == since and job["until"] == "2026-01-01T03:00:00Z"
    explicit = api.run("canvas", "users", {"format": "jsonl", "since": "2026-01-01T00:00:00Z",
                                           "until": "2026-01-01T02:00:00Z"})
    assert explicit["until"] == "2026-01-01T02:00:00Z"
    for r in api.records(explicit):
        assert "2026-01-01T00:00:00.000Z" <= r["meta"]["ts"] < "2026-01-01T02:00:00.000Z"


def test_an_incremental_since_the_frontier_is_empty_not_an_error(simulator):
    api = Api(simulator)
    job = api.run("canvas", "accounts", {"format": "csv", "since": simulator.frontier})
    assert job["status"] == "complete" and job["until"] == simulator.frontier
    parts = api.parts(job)
    assert len(parts) == 1 and parts[0].decode().count("\n") == 1  # the header alone


def test_objects_and_rows_per_part(make_simulator):
    sim = make_simulator(rows={"submissions": 250}, rows_per_part=100)
    api = Api(sim)
    job = api.run("canvas", "submissions", {"format": "jsonl"})
    sizes = [len(p.splitlines()) for p in api.parts(job)]
    assert sizes == [100, 100, len(sim.current_state("canvas", "submissions")) - 200]


def test_object_urls_are_pre_signed(make_simulator):
    clock = FakeClock()
    simulator = make_simulator(clock=clock, job_wait=0, job_run=0, url_ttl=900)
    api = Api(simulator)
    job = api.run("canvas", "submissions", {"format": "csv"})
    ids = [o["id"] for o in job["objects"]]
    answer = api.urls(ids)
    assert answer.status == 200
    urls = answer.json["urls"]
    assert set(urls) == set(ids) and all(set(v) == {"url"} for v in urls.values())
    for i, object_id in enumerate(ids):
        parsed = urllib.parse.urlsplit(urls[object_id]["url"])
        assert f"{parsed.scheme}://{parsed.netloc}" == simulator.base_url
        assert re.match(r"^/objects/[^/]+/part-%05d-[0-9a-f]+\.csv\.gz$" % i, parsed.path)
        query = urllib.parse.parse_qs(parsed.query)
        assert set(query) == {"expires", "signature"}
        assert int(query["expires"][0]) == clock() + 900
        assert re.match(r"^[0-9a-f]{64}$", query["signature"][0])
    assert api.urls([]).json == {"urls": {}}


def test_download_is_a_gzip_part_without_authorization(simulator):
    api = Api(simulator)
    job = api.run("canvas", "accounts", {"format": "jsonl"})
    url = api.part_urls(job)[0]
    answer = request("GET", url)
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/gzip"
    assert "Content-Encoding" not in answer.headers
    assert int(answer.headers["Content-Length"]) == len(answer.body)
    assert answer.headers["Accept-Ranges"] == "bytes"
    lines = gzip.decompress(answer.body).decode().splitlines()
    assert len(lines) == len(simulator.current_state("canvas", "accounts"))
    download = [r for r in simulator.requests if r["path"].startswith("/objects/")]
    assert download and "authorization" not in download[-1]["headers"]


def test_unknown_job_and_object_are_404(simulator):
    api = Api(simulator)
    missing = str(uuid.uuid4())
    assert_error(api.job(missing), 404, "NotFoundError", id=missing, kind="job")
    assert_error(api.urls([missing]), 404, "NotFoundError", id=missing, kind="object")


def test_unknown_endpoint_and_wrong_method(simulator):
    api = Api(simulator)
    assert_error(api.call("GET", "/dap/nothing"), 404, "NotFoundError", kind="endpoint")
    answer = api.call("DELETE", "/dap/query/canvas/table")
    assert_error(answer, 405, "MethodNotAllowedError")
    assert answer.headers["Allow"] == "GET"


# ------------------------------------------------------------------------------- 400s


@pytest.mark.parametrize("body,location", [
    (b'{"format": "jsonl",', {"line": 1, "column": 20, "character": 19}),
    (b'{"format":\n  "xml"}', {"line": 2, "column": 3, "character": 13}),
    (b'{"format": "jsonl", "mode": "flat"}', {"line": 1, "column": 29, "character": 28}),
    (b'{"format": "jsonl", "filter": {"x": 1}}', {"line": 1, "column": 21, "character": 20}),
    (b'{"format": "jsonl",\n "since": "2026-01-01T00:00:00"}',
     {"line": 2, "column": 11, "character": 30}),
    (b'{"format": "jsonl", "since": "2026-01-01"}', {"line": 1, "column": 30, "character": 29}),
    (b'{"format": "jsonl", "since": 1767225600}', {"line": 1, "column": 30, "character": 29}),
    (b'{"format": "jsonl", "until": "2026-01-01T00:00:00Z"}',
     {"line": 1, "column": 30, "character": 29}),
    (b'{"mode": "expanded"}', {"line": 1, "column": 1, "character": 0}),
    (b'{"format": "json"}', {"line": 1, "column": 12, "character": 11}),
    (b'["format", "jsonl"]', {"line": 1, "column": 1, "character": 0}),
    (b"", {"line": 1, "column": 1, "character": 0}),
])
def test_bad_query_bodies_are_validation_errors_with_location(simulator, body, location):
    answer = Api(simulator).start("canvas", "accounts", body)
    assert_error(answer, 400, "ValidationError", location=location)


def test_bad_object_url_bodies_are_validation_errors(simulator):
    api = Api(simulator)
    for body in ({"id": "x"}, [{"name": "x"}], [{"id": 3}], b"not json"):
        assert_error(api.call("POST", "/dap/object/url", body), 400, "ValidationError")


def test_parquet_is_served_when_fastparquet_is_installed(simulator):
    pytest.importorskip("fastparquet")
    pandas = pytest.importorskip("pandas")
    import io

    api = Api(simulator)
    job = api.run("canvas", "accounts", {"format": "parquet", "mode": "condensed"})
    url = api.part_urls(job)[0]
    assert url.split("?")[0].endswith(".parquet.gz")
    frame = pandas.read_parquet(io.BytesIO(gzip.decompress(request("GET", url).body)))
    assert list(frame.columns)[:2] == ["meta.ts", "key.id"]  # a snapshot: no meta.action
    assert len(frame) == len(simulator.current_state("canvas", "accounts"))


def test_parquet_without_fastparquet_is_a_clear_400(simulator, monkeypatch):
    from fixtures.simulator import service

    monkeypatch.setattr(service, "parquet_available", lambda: False)
    answer = Api(simulator).start("canvas", "accounts", {"format": "parquet"})
    error = assert_error(answer, 400, "ValidationError")
    assert "fastparquet" in error["message"] and error["location"]["character"] == 11
    assert encoders.parquet_available() in (True, False)


def test_out_of_range_gives_the_permitted_range(simulator):
    api = Api(simulator)
    permitted = {"since": "2025-12-02T03:00:00Z", "until": "2026-01-01T03:00:00Z"}
    for body in (
        {"format": "jsonl", "since": "2026-01-01T03:00:00.001Z"},
        {"format": "jsonl", "since": "2026-01-01T00:00:00Z", "until": "2026-01-01T04:00:00Z"},
        {"format": "jsonl", "since": "2026-01-01T02:00:00Z", "until": "2026-01-01T02:00:00Z"},
        {"format": "jsonl", "since": "2026-01-01T02:00:00Z", "until": "2026-01-01T01:00:00Z"},
    ):
        assert_error(api.start("canvas", "accounts", body), 400, "OutOfRangeError", **permitted)


def test_since_older_than_retention_needs_a_snapshot(make_simulator):
    sim = make_simulator(retention_days=2)
    answer = Api(sim).start("canvas", "accounts",
                            {"format": "jsonl", "since": "2025-12-29T00:00:00Z"})
    assert_error(answer, 400, "SnapshotRequiredError", since="2025-12-30T03:00:00Z",
                 until="2026-01-01T03:00:00Z")
    ok = Api(sim).start("canvas", "accounts", {"format": "jsonl", "since": "2025-12-31T00:00:00Z"})
    assert ok.status == 200
