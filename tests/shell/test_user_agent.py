"""Every request dap makes says who it is: `User-Agent: dap/<version>` (#11), read from the
simulator's request log; object downloads still carry no credentials."""
from __future__ import annotations

import re

from dap_core import SnapshotQuery
from dap_core.version import __version__

from .conftest import connect


def test_every_api_call_and_download_carries_dap_user_agent(sim, tmp_path):
    with connect(sim) as dap:
        query = SnapshotQuery("canvas", "accounts", format="csv")
        dap.download(dap.run(query), query, str(tmp_path))
    requests = sim.requests
    paths = [r["path"] for r in requests]
    assert any(p.startswith("/ids/auth/login") for p in paths)
    assert any("/data" in p for p in paths) and any(p.startswith("/dap/job/") for p in paths)
    downloads = [r for r in requests if re.search(r"part-\d+", r["path"])]
    assert downloads, paths
    for request in requests:
        assert request["headers"].get("user-agent") == "dap/" + __version__, request["path"]
    for request in downloads:
        assert "authorization" not in request["headers"]
        assert "x-instauth" not in request["headers"]
