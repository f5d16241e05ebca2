"""Values htslib would misread without a word are refused, in bgzipped input too; late errors name the input."""

from __future__ import annotations

import gzip
import re

import pysam
import pytest

from vcf_agent.errors import VcfAgentError
from vcf_agent.ingest.normalize import normalize_vcf
from vcf_agent.ingest.pipeline import convert_vcf

from helpers import data_file

HAIL = "cohorts/hail_1kg_chr20_100samples_nocontigs.vcf.gz"


def _edited_copy(tmp_path, record: int, column: int, value: str):
    """The Hail cohort, bgzipped again with one column of its `record`-th record replaced; (path, line, old fields)."""
    with gzip.open(data_file(HAIL), "rt") as handle:
        lines = handle.read().split("\n")
    number = [n for n, line in enumerate(lines) if line and not line.startswith("#")][record - 1]
    fields = lines[number].split("\t")
    original = list(fields)
    fields[column] = value
    lines[number] = "\t".join(fields)
    plain = tmp_path / "edited.vcf"
    plain.write_text("\n".join(lines))
    path = tmp_path / "edited.vcf.gz"
    pysam.tabix_compress(str(plain), str(path))
    plain.unlink()
    return path, number + 1, original


@pytest.mark.parametrize(("column", "value", "what"), [(5, "high", "QUAL 'high'"), (1, "{pos}x", "POS '{pos}x'")])
def test_misread_value_in_bgzipped_input_is_refused_naming_the_line(tmp_path, column, value, what):
    path, line, original = _edited_copy(tmp_path, 200, column, value.format(pos="10000"))
    out = tmp_path / "out" / "edited.bcf"
    with pytest.raises(VcfAgentError) as raised:
        normalize_vcf(path, out, source="edited")
    message = str(raised.value)
    assert message.startswith(f"{path}: line {line}: record {original[0]}:")
    assert what.format(pos="10000") in message
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_real_bgzipped_cohort_passes_the_scan(tmp_path):
    # The same cohort unedited: the scan of its text finds nothing, every record comes through.
    stats = normalize_vcf(data_file(HAIL), tmp_path / "hail.bcf", source="hail")
    with gzip.open(data_file(HAIL), "rt") as handle:
        records = sum(1 for line in handle if not line.startswith("#"))
    assert stats.records_in == records


def test_conversion_error_names_the_users_file_and_record(tmp_path):
    # test-hemi.vcf declares INFO/AC Number=1 but a record holds two values (the README's example).
    vcf = data_file("edge/cyvcf2/test-hemi.vcf")
    with pytest.raises(VcfAgentError) as raised:
        convert_vcf(vcf, tmp_path, source="hemi")
    assert re.match(rf"{re.escape(str(vcf))}: record \S+:\d+: INFO/AC value", str(raised.value)), str(raised.value)
