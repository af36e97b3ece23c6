"""A minimal test client of the simulator on the standard library (never `dap_core`)."""
from __future__ import annotations

import gzip
import json
import time
import urllib.error
import urllib.request
from typing import Dict, List, Optional


class FakeClock:
    """A clock for `Simulator(clock=...)` that moves only when told: `advance(seconds)`.

    It starts at `start` (epoch seconds; 2026-01-01T00:00:00Z), so that what the simulator
    derives from the time (token `exp`, job `expires_at`, URL `expires`) is known exactly."""

    START = 1767225600.0

    def __init__(self, start: float = START):
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        assert seconds >= 0, "time does not go back"
        self.now += seconds
        return self.now


class Answer:
    def __init__(self, status: int, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def error(self) -> dict:
        return self.json["error"]

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.body[:200]!r})"


def request(method: str, url: str, body: Optional[bytes] = None,
            headers: Optional[Dict[str, str]] = None) -> Answer:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return Answer(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Answer(exc.code, exc.headers, exc.read())


class Api:
    """Logs in once; `call()` carries the token."""

    def __init__(self, sim, header: str = "Authorization"):
        self.sim = sim
        self.base = sim.base_url
        self.header = header
        self.token = self.login().json["access_token"]

    def login(self, credentials: Optional[str] = None,
              body: bytes = b"grant_type=client_credentials") -> Answer:
        return request("POST", self.base + "/ids/auth/login", body, {
            "Authorization": "Basic " + (credentials or self.sim.api_key),
            "Content-Type": "application/x-www-form-urlencoded",
        })

    def auth(self) -> Dict[str, str]:
        if self.header == "x-instauth":
            return {"x-instauth": self.token}
        return {"Authorization": "Bearer " + self.token}

    def call(self, method: str, path: str, body=None,
             headers: Optional[Dict[str, str]] = None) -> Answer:
        h = self.auth()
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        return request(method, self.base + path, data, h)

    def tables(self, namespace: str = "canvas") -> Answer:
        return self.call("GET", f"/dap/query/{namespace}/table")

    def schema(self, namespace: str, table: str) -> Answer:
        return self.call("GET", f"/dap/query/{namespace}/table/{table}/schema")

    def start(self, namespace: str, table: str, body) -> Answer:
        return self.call("POST", f"/dap/query/{namespace}/table/{table}/data", body)

    def job(self, job_id: str) -> Answer:
        return self.call("GET", f"/dap/job/{job_id}")

    def urls(self, ids: List[str]) -> Answer:
        return self.call("POST", "/dap/object/url", [{"id": i} for i in ids])

    def wait(self, job: dict, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while job["status"] not in ("complete", "failed"):
            assert time.monotonic() < deadline, f"job did not finish: {job}"
            time.sleep(0.02)
            answer = self.job(job["id"])
            assert answer.status == 200, answer
            job = answer.json
        return job

    def run(self, namespace: str, table: str, body) -> dict:
        answer = self.start(namespace, table, body)
        assert answer.status == 200, answer
        return self.wait(answer.json)

    def part_urls(self, job: dict) -> List[str]:
        ids = [o["id"] for o in job["objects"]]
        answer = self.urls(ids)
        assert answer.status == 200, answer
        return [answer.json["urls"][i]["url"] for i in ids]

    def parts(self, job: dict) -> List[bytes]:
        """The decompressed bytes of every part of a complete job, in order."""
        out = []
        for url in self.part_urls(job):
            answer = request("GET", url)
            assert answer.status == 200, answer
            out.append(gzip.decompress(answer.body))
        return out

    def records(self, job: dict) -> List[dict]:
        return [json.loads(line) for part in self.parts(job) for line in part.decode().splitlines()]


def as_state_record(record: dict) -> dict:
    """A record as a state (and a snapshot) holds it: `meta` without `action`."""
    meta = {k: v for k, v in record["meta"].items() if k != "action"}
    return dict(record, meta=meta)


def apply(state: Dict[str, dict], records: List[dict]) -> Dict[str, dict]:
    """Apply JSONL records to a state (key text -> record without meta.action): upsert a
    snapshot's record or an incremental's U, remove D."""
    for r in records:
        k = json.dumps(r["key"], sort_keys=True, separators=(",", ":"))
        action = r["meta"].get("action")
        if action == "D":
            state.pop(k, None)
        else:
            assert action in (None, "U"), r
            state[k] = as_state_record(r)
    return state


def key_text(record: dict) -> str:
    return json.dumps(record["key"], sort_keys=True, separators=(",", ":"))
