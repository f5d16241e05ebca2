"""Variant descriptions (vcf_agent.embedding.describe): what the text says, and what it leaves out.

Inputs are Arrow tables that follow schema.VARIANT_COLUMNS (test input, as the
converter writes them) and one real cohort converted by the project's
converter, whose description counts are checked against bcftools.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vcf_agent.embedding.describe import DEFAULT_TEMPLATE, Describer, describe_rows
from vcf_agent.errors import VcfAgentError
from vcf_agent.schema import VARIANT_COLUMNS, info_column_name

from helpers import variant, whole_vcf_as_one_shard

DATA = Path(os.environ.get("VCF_TEST_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
COHORT = DATA / "cohorts" / "1kg_phase3_chr22_16-16.5Mb_2504samples.vcf.gz"


def table(*rows: dict) -> pa.Table:
    """Rows typed as the converter types them (core columns from schema, INFO columns as given)."""
    fields = [column.field() for column in VARIANT_COLUMNS]
    extra = sorted({name for row in rows for name in row} - {f.name for f in fields})
    types = {info_column_name("AF"): pa.float64(), info_column_name("CLNSIG"): pa.string()}
    fields += [pa.field(name, types.get(name, pa.string())) for name in extra]
    schema = pa.schema([f.with_nullable(True) for f in fields])
    return pa.Table.from_pylist([{f.name: row.get(f.name) for f in fields} for row in rows], schema=schema)


def describe(*rows: dict, template: str | None = None) -> list[str]:
    return Describer(template).describe(table(*rows))


# ---------------------------------------------------------------- content


def test_a_fully_annotated_snv_reads_as_the_documented_template():
    row = variant(
        gene="BRCA2",
        consequence="missense_variant",
        impact="MODERATE",
        filter="PASS",
        info_AF=0.004,
        info_CLNSIG="Pathogenic",
    )
    assert describe(row) == [
        "single-nucleotide variant C>T in BRCA2, missense variant, moderate impact,"
        " clinical significance pathogenic, rare (AF 0.1-1%), passed filters"
    ]


def test_coordinates_and_identifiers_stay_out_of_the_text():
    first = variant(chrom="13", pos=32_338_000, id="rs80357906", qual=99.0, gene="BRCA2")
    second = variant(chrom="X", pos=1_234, id="rs1", qual=3.0, gene="BRCA2")
    texts = describe(first, second)
    assert texts[0] == texts[1]
    for token in ("32338000", "32_338_000", "rs80357906", "13:", "99"):
        assert token not in texts[0]


def test_optional_parts_disappear_when_their_field_is_missing():
    assert describe(variant()) == ["single-nucleotide variant C>T"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"ref": "AC", "alt": "GT", "variant_class": "mnp"}, "multi-nucleotide variant AC>GT"),
        ({"ref": "A", "alt": "AT", "variant_class": "insertion"}, "insertion of 1 bp (T)"),
        ({"ref": "GTTA", "alt": "G", "variant_class": "deletion"}, "deletion of 3 bp (TTA)"),
        ({"ref": "G" + "A" * 43, "alt": "G", "variant_class": "deletion"}, "deletion of 43 bp"),
        ({"ref": "G" + "A" * 120, "alt": "G", "variant_class": "deletion"}, "deletion of 51 bp-1 kb"),
        ({"ref": "ACG", "alt": "TT", "variant_class": "indel"}, "complex indel replacing 3 bp with 2 bp"),
        (
            {"ref": "A", "alt": "<DEL>", "variant_class": "symbolic", "pos": 10_000, "end": 15_000},
            "structural variant deletion (DEL) of 1-10 kb",
        ),
        (
            {"ref": "A", "alt": "<DUP:TANDEM>", "variant_class": "symbolic", "pos": 1, "end": 2_000_000},
            "structural variant tandem duplication (DUP:TANDEM) of over 1 Mb",
        ),
        (
            {"ref": "G", "alt": "G]17:198982]", "variant_class": "breakend", "chrom": "2"},
            "breakend joined to another chromosome",
        ),
        (
            {"ref": "G", "alt": "]2:321681]G", "variant_class": "breakend", "chrom": "2"},
            "breakend joined elsewhere on the same chromosome",
        ),
        ({"ref": "A", "alt": "*", "variant_class": "overlap"}, "allele overlapping an upstream deletion"),
        (
            {"ref": "A", "alt": "<NON_REF>", "variant_class": "non_ref"},
            "unspecified alternate allele (gVCF reference block)",
        ),
    ],
)
def test_each_variant_class_has_its_words(values, expected):
    assert describe(variant(**values)) == [expected]


def test_two_sv_deletions_of_different_lengths_in_one_band_share_a_description():
    small = variant(ref="A", alt="<DEL>", variant_class="symbolic", pos=100, end=2_100)
    large = variant(ref="A", alt="<DEL>", variant_class="symbolic", pos=500, end=9_000)
    texts = describe(small, large)
    assert texts[0] == texts[1] == "structural variant deletion (DEL) of 1-10 kb"


@pytest.mark.parametrize(
    ("af", "band"),
    [
        (0.0002, "very rare (AF < 0.1%)"),
        (0.001, "rare (AF 0.1-1%)"),
        (0.0099, "rare (AF 0.1-1%)"),
        (0.01, "low-frequency (AF 1-5%)"),
        (0.05, "common (AF 5-50%)"),
        (0.5, "major allele (AF >= 50%)"),
        (1.0, "major allele (AF >= 50%)"),
    ],
)
def test_frequency_bands(af, band):
    assert describe(variant(info_AF=af), template="{frequency}") == [band]


def test_a_list_valued_af_uses_its_first_value():
    rows = pa.table(
        {
            "variant_id": ["1:5:A:G", "1:6:A:G", "1:7:A:G"],
            "variant_class": ["snv"] * 3,
            "ref": ["A"] * 3,
            "alt": ["G"] * 3,
            "info_AF": pa.array([[0.2, 0.001], None, []], pa.list_(pa.float64())),
        }
    )
    assert Describer("snv[ {frequency}]").describe(rows) == ["snv common (AF 5-50%)", "snv", "snv"]


@pytest.mark.parametrize(
    ("filter_value", "expected"),
    [("PASS", "passed filters"), ("q10;s50", "failed filters q10 and s50"), (None, "")],
)
def test_filter_words(filter_value, expected):
    assert describe(variant(filter=filter_value), template="[{filter}]") == [expected]


def test_clinical_significance_and_consequences_in_words():
    row = variant(
        consequence="splice_donor_variant&intron_variant",
        info_CLNSIG="Pathogenic/Likely_pathogenic",
    )
    assert describe(row, template="{consequence}; {clinical_significance}") == [
        "splice donor variant and intron variant; pathogenic or likely pathogenic"
    ]


def test_modifier_impact_has_no_words_and_the_other_impacts_do():
    rows = [variant(impact=impact) for impact in ("MODIFIER", "LOW", "MODERATE", "HIGH")]
    assert describe(*rows, template="snv[, {impact} impact]") == [
        "snv",
        "snv, low impact",
        "snv, moderate impact",
        "snv, high impact",
    ]


@pytest.mark.parametrize(
    ("consequence", "truncating"),
    [
        ("stop_gained", True),
        ("frameshift_variant", True),
        ("splice_donor_variant&intron_variant", True),
        ("splice_region_variant&splice_acceptor_variant", True),
        ("missense_variant", False),
        ("start_lost", False),
        ("splice_region_variant&intron_variant", False),
        (None, False),
    ],
)
def test_the_loss_of_function_terms_read_as_protein_truncating(consequence, truncating):
    text = describe(variant(consequence=consequence), template="snv[, {effect}]")
    assert text == (["snv, protein-truncating (loss of function)"] if truncating else ["snv"])


@pytest.mark.parametrize(
    ("clnsig", "words"),
    [
        ("Conflicting_interpretations_of_pathogenicity", "conflicting interpretations"),
        ("Conflicting_classifications_of_pathogenicity", "conflicting classifications"),
        ("Likely_pathogenic", "likely pathogenic"),
        ("Benign/Likely_benign", "benign or likely benign"),
    ],
)
def test_conflicting_clinical_significance_does_not_say_pathogenic(clnsig, words):
    assert describe(variant(info_CLNSIG=clnsig), template="{clinical_significance}") == [words]


def test_a_frameshift_reads_as_the_documented_template():
    row = variant(
        ref="CA", alt="C", variant_class="deletion", gene="SIMG8", consequence="frameshift_variant", impact="HIGH",
        info_CLNSIG="Pathogenic", filter="PASS",
    )  # fmt: skip
    assert describe(row) == [
        "deletion of 1 bp (A) in SIMG8, frameshift variant, high impact, protein-truncating (loss of function),"
        " clinical significance pathogenic, passed filters"
    ]


def test_describe_rows_takes_plain_dicts():
    assert describe_rows([{"variant_class": "snv", "ref": "G", "alt": "A", "gene": "TP53"}]) == [
        "single-nucleotide variant G>A in TP53"
    ]


# ---------------------------------------------------------------- template and errors


def test_a_custom_template_is_used():
    row = variant(gene="TP53", impact="HIGH")
    assert describe(row, template="{impact} impact variant[ of gene {gene}]") == ["high impact variant of gene TP53"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{variant_class} at {pos}", "unknown field {pos}"),
        ("{variant_class}[ in {gene}", "unbalanced or nested brackets"),
        ("{variant_class}[ in [{gene}]]", "unbalanced or nested brackets"),
        ("{variant_class}[ always]", "names no field"),
    ],
)
def test_a_bad_template_is_refused_in_one_line(template, message):
    with pytest.raises(VcfAgentError, match=r"embedding\.template") as error:
        Describer(template)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_row_without_a_variant_class_names_the_file_and_the_row():
    rows = table(variant(), variant(), variant(variant_class=None))
    with pytest.raises(VcfAgentError) as error:
        Describer().describe(rows, subject="shard.parquet", first_row=100)
    assert str(error.value) == "shard.parquet: row 103: column variant_class is empty"


def test_a_table_that_is_not_a_variant_shard_is_refused():
    with pytest.raises(VcfAgentError, match=r"genotypes\.parquet: no column variant_class, ref, alt"):
        Describer().columns_needed(pa.schema([("sample", pa.string())]), "genotypes.parquet")


def test_default_template_is_the_documented_one():
    assert Describer().template.text == DEFAULT_TEMPLATE


# ---------------------------------------------------------------- a real cohort


def _bcftools_count(*view_args: str) -> int:
    """Records of the split cohort selected by `bcftools view` (independent of our converter)."""
    norm = subprocess.run(
        ["bcftools", "norm", "-m", "-any", "-Ou", str(COHORT)], capture_output=True, check=True
    ).stdout
    view = subprocess.run(["bcftools", "view", "-H", *view_args], input=norm, capture_output=True, check=True)
    return view.stdout.count(b"\n")


@pytest.fixture(scope="module")
def cohort_shard(tmp_path_factory) -> Path:
    assert COHORT.exists(), f"real test data missing: {COHORT} (set VCF_TEST_DATA)"
    return whole_vcf_as_one_shard(COHORT, tmp_path_factory.mktemp("cohort"), "kg")


def test_descriptions_of_a_real_cohort_agree_with_bcftools(cohort_shard):
    texts = Describer().describe(pq.read_table(cohort_shard))
    assert len(texts) == _bcftools_count() == 6139
    assert sum(t.startswith("single-nucleotide variant ") for t in texts) == _bcftools_count("-v", "snps")
    assert sum(t.endswith(", passed filters") for t in texts) == _bcftools_count("-f", "PASS")
    assert sum("very rare (AF < 0.1%)" in t for t in texts) == _bcftools_count("-i", "INFO/AF<0.001")
    assert sum("major allele (AF >= 50%)" in t for t in texts) == _bcftools_count("-i", "INFO/AF>=0.5")
    # Positions differ on every record; descriptions repeat (what makes the cache pay).
    assert len(set(texts)) < len(texts) / 10
