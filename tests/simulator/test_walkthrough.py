"""The whole flow with nothing but the standard library: auth -> job -> poll -> URLs ->
download -> records. What any client written against the public contract does."""
from __future__ import annotations

import base64
import gzip
import json
import time
import urllib.request


def test_the_whole_flow_with_urllib_only(simulator):
    base = simulator.base_url

    def call(method, path, body=None, headers=None):
        req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
            return json.loads(resp.read())

    # auth: Basic credentials (client id and secret), form body
    basic = base64.b64encode(b"us-east-1#demo:demo-secret").decode()
    login = call("POST", "/ids/auth/login", b"grant_type=client_credentials",
                 {"Authorization": "Basic " + basic,
                  "Content-Type": "application/x-www-form-urlencoded"})
    auth = {"Authorization": "Bearer " + login["access_token"], "Content-Type": "application/json"}

    assert "submissions" in call("GET", "/dap/query/canvas/table", headers=auth)["tables"]
    schema = call("GET", "/dap/query/canvas/table/submissions/schema", headers=auth)

    # job, then poll until it is terminal
    job = call("POST", "/dap/query/canvas/table/submissions/data",
               json.dumps({"format": "jsonl"}).encode(), auth)
    delay = 0.02
    while job["status"] not in ("complete", "failed"):
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
        job = call("GET", f"/dap/job/{job['id']}", headers=auth)
    assert job["status"] == "complete" and job["schema_version"] == schema["version"]

    # object ids -> pre-signed URLs
    ids = [o["id"] for o in job["objects"]]
    asked = json.dumps([{"id": i} for i in ids]).encode()
    urls = call("POST", "/dap/object/url", asked, auth)["urls"]

    # download with no Authorization header; gunzip; JSON Lines
    records = []
    for object_id in ids:
        with urllib.request.urlopen(urls[object_id]["url"], timeout=10) as resp:
            records += [json.loads(line) for line in gzip.decompress(resp.read()).splitlines()]

    assert len(records) == len(simulator.current_state("canvas", "submissions"))
    assert {json.dumps(r["key"], sort_keys=True, separators=(",", ":")): r for r in records} \
        == simulator.current_state("canvas", "submissions")
    for r in records:
        assert set(r) == {"key", "value", "meta"} and set(r["meta"]) == {"ts"}  # no action
        assert r["meta"]["ts"] < job["at"].replace("Z", ".000Z")
    assert not any("authorization" in r["headers"] for r in simulator.requests
                   if r["path"].startswith("/objects/"))
