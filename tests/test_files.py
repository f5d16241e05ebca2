"""One atomic writer (vcf_agent.files): a write that fails leaves the old file or folder as it
was and no temporary file beside it; one that succeeds replaces it whole."""

from __future__ import annotations

import json

import pytest

from vcf_agent.files import atomic_file, atomic_files, atomic_folder, write_json
from vcf_agent.ingest.shards import read_plan, write_plan


class Interrupted(Exception):
    pass


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_failing_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "stats.json"
    write_json({"records": 1}, path)
    with pytest.raises(Interrupted), atomic_file(path) as tmp:
        tmp.write_text('{"records": ')  # half written, then the job fails
        raise Interrupted
    assert json.loads(path.read_text()) == {"records": 1}
    assert leftovers(tmp_path) == []
    write_json({"records": 2}, path)
    assert json.loads(path.read_text()) == {"records": 2} and leftovers(tmp_path) == []


def test_a_plan_that_fails_midway_leaves_the_previous_plan(tmp_path):
    # A real writer of the package: a row that is not a shard fails after the header is written.
    path = tmp_path / "plan.tsv"
    write_plan([], path)
    before = path.read_text()
    with pytest.raises(TypeError):
        write_plan(["not a shard"], path)
    assert path.read_text() == before and read_plan(path) == []
    assert leftovers(tmp_path) == []


def test_files_made_together_are_replaced_together_or_not_at_all(tmp_path):
    data, index = tmp_path / "x.vcf.gz", tmp_path / "x.vcf.gz.tbi"
    with atomic_files(data, index) as (data_tmp, index_tmp):
        data_tmp.write_text("old data")
        index_tmp.write_text("old index")
    with pytest.raises(Interrupted), atomic_files(data, index) as (data_tmp, index_tmp):
        data_tmp.write_text("new data")
        raise Interrupted  # before the index is made
    assert (data.read_text(), index.read_text()) == ("old data", "old index")
    assert leftovers(tmp_path) == []


def test_a_folder_is_built_aside_and_renamed_in(tmp_path):
    folder = tmp_path / "export"
    with pytest.raises(Interrupted), atomic_folder(folder) as building:
        (building / "model.onnx").write_text("half")
        raise Interrupted
    assert not folder.exists() and leftovers(tmp_path) == []
    with atomic_folder(folder, sync=True) as building:
        assert not folder.exists()  # nothing is visible under the final name while it is built
        (building / "model.onnx").write_text("whole")
    assert (folder / "model.onnx").read_text() == "whole" and leftovers(tmp_path) == []
    # another process finished the same folder first: theirs is kept, ours removed
    with atomic_folder(folder) as building:
        (building / "model.onnx").write_text("second")
    assert (folder / "model.onnx").read_text() == "whole" and leftovers(tmp_path) == []
