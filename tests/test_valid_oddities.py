"""Valid VCF that htslib reads badly as it is is still accepted: blank lines, records at POS 0, unsorted records.

Each input is a real cohort edited in tmp_path; the expected sites come from bcftools on the
unedited file.
"""

from __future__ import annotations

import gzip
import subprocess
from collections import Counter

import pysam
import pytest

from vcf_agent.ingest.pipeline import convert_vcf
from vcf_agent.ingest.shards import ShardSize

from helpers import data_file, query

HAIL = "cohorts/hail_1kg_chr20_100samples_nocontigs.vcf.gz"


def _edited(tmp_path, edit):
    """The Hail cohort, bgzipped again with its records as `edit(records)` returns them."""
    with gzip.open(data_file(HAIL), "rt") as handle:
        lines = handle.read().rstrip("\n").split("\n")
    header = [line for line in lines if line.startswith("#")]
    records = edit([line for line in lines if not line.startswith("#")])
    plain = tmp_path / "edited.vcf"
    plain.write_text("\n".join(header + records) + "\n")
    path = tmp_path / "edited.vcf.gz"
    pysam.tabix_compress(str(plain), str(path))
    plain.unlink()
    return path


def _bcftools_sites(vcf) -> Counter:
    """The sites as bcftools lists them (the cohort has no multiallelic record, so no split is needed)."""
    listed = subprocess.run(["bcftools", "query", "-f", "%CHROM\t%POS\t%REF\t%ALT\n", vcf], capture_output=True)
    sites = Counter(tuple(line.split("\t")) for line in listed.stdout.decode().splitlines())
    assert sites and not any("," in site[3] for site in sites)
    return sites


def _stored_sites(converted) -> Counter:
    files = [str(p) for p in converted.parquet["variants"]]
    rows = query(f"SELECT chrom, pos, ref, alt FROM read_parquet({files!r})")
    return Counter((chrom, str(pos), ref, alt) for chrom, pos, ref, alt in rows)


def test_blank_lines_are_left_out_not_refused(tmp_path):
    # One blank line among the records and two at the end (a CRLF one among them).
    path = _edited(tmp_path, lambda records: [*records[:100], "", *records[100:], "\r", ""])
    converted = convert_vcf(path, tmp_path / "chain", source="edited")
    assert _stored_sites(converted) == _bcftools_sites(data_file(HAIL))


@pytest.mark.parametrize("size", [ShardSize(records=100), ShardSize(bp=1_000_000)], ids=["records", "bp"])
def test_a_record_at_pos_0_is_stored(tmp_path, size):
    def at_telomere(records):
        first = records[0].split("\t")
        return ["\t".join([first[0], "0", *first[2:]]), *records[1:]]

    path = _edited(tmp_path, at_telomere)
    converted = convert_vcf(path, tmp_path / "chain", source="edited", shard_size=size)
    expected = _bcftools_sites(path)
    assert [site for site in expected if site[1] == "0"]
    assert _stored_sites(converted) == expected


def test_unsorted_records_are_sorted_not_refused(tmp_path):
    path = _edited(tmp_path, lambda records: [*records[200:], *records[:200]])
    converted = convert_vcf(path, tmp_path / "chain", source="edited")
    assert _stored_sites(converted) == _bcftools_sites(data_file(HAIL))
    positions = [row[0] for row in query(f"SELECT pos FROM read_parquet({str(converted.parquet['variants'][0])!r})")]
    assert positions == sorted(positions)
