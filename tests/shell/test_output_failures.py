"""An output that cannot be finished is taken back whole: when the sidecar cannot be put in
place after the data went in, the data file goes too, so that no file stands without its
sidecar (what the chain and the database loaders take as complete), and the failure is an
``OutputError`` (exit 12) naming the sidecar."""
from __future__ import annotations

import os

import pytest

from dap_core import SnapshotQuery, layout
from dap_core.errors import OutputError

from .conftest import connect


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_a_sidecar_that_cannot_be_put_in_place_takes_the_data_file_back(sim, tmp_path, fmt):
    query = SnapshotQuery("canvas", "accounts", format=fmt)
    with connect(sim) as dap:
        job = dap.run(query)
        name = layout.output_name(query.namespace, query.table, job, fmt)
        # a directory where the sidecar goes: its rename fails for real (EISDIR), after the
        # data file's rename succeeded
        os.mkdir(tmp_path / layout.meta_name(name))
        with pytest.raises(OutputError) as caught:
            dap.download(job, query, str(tmp_path))
    assert caught.value.exit_status == 12
    assert layout.meta_name(name) in str(caught.value)
    assert sorted(os.listdir(tmp_path)) == [layout.meta_name(name)]  # no data, no temporaries
    assert os.listdir(tmp_path / layout.meta_name(name)) == []
