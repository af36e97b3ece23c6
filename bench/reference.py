"""The reference a benchmark measures dap against: the least a client can do.

A bare urllib3 loop over the public contract: log in, start one query job, poll it, trade
the objects for URLs, and gunzip every part into one file. No retries, no validation, no
merging of headers, no atomic rename: what is left is the cost of the network and zlib,
which is the floor dap's own overhead is measured from.

    python -m bench.reference BASE_URL CLIENT_ID CLIENT_SECRET NAMESPACE TABLE FORMAT OUTFILE
"""
import base64
import json
import sys
import time
import zlib

import urllib3


def main(argv):
    base_url, client_id, secret, namespace, table, fmt, outfile = argv
    http = urllib3.PoolManager()
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    login = http.request(
        "POST", base_url + "/ids/auth/login",
        body="grant_type=client_credentials",
        headers={"Authorization": "Basic " + basic,
                 "Content-Type": "application/x-www-form-urlencoded"},
    )
    token = json.loads(login.data)["access_token"]
    auth = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}

    job = json.loads(http.request(
        "POST", f"{base_url}/dap/query/{namespace}/table/{table}/data",
        body=json.dumps({"format": fmt}), headers=auth).data)
    while job["status"] not in ("complete", "failed"):
        time.sleep(0.2)
        job = json.loads(http.request("GET", f"{base_url}/dap/job/{job['id']}", headers=auth).data)
    if job["status"] != "complete":
        sys.exit(f"reference: job failed: {job}")

    ids = [obj["id"] for obj in job["objects"]]
    urls = json.loads(http.request(
        "POST", base_url + "/dap/object/url",
        body=json.dumps([{"id": i} for i in ids]), headers=auth).data)["urls"]
    with open(outfile, "wb") as out:
        for object_id in ids:
            response = http.request("GET", urls[object_id]["url"],
                                    preload_content=False, decode_content=False)
            inflate = zlib.decompressobj(wbits=31)
            for chunk in response.stream(256 * 1024):
                out.write(inflate.decompress(chunk))
            out.write(inflate.flush())
            response.release_conn()


if __name__ == "__main__":
    main(sys.argv[1:])
