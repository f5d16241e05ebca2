"""Search quality on the bundled example (the example_run fixture), and the filter hints of vcf_agent.query.hints.

The queries and their relevance rules are benchmarks/search_queries.yaml; each relevant set
is selected from the store's columns by DuckDB (benchmarks/bench_search_quality.py), never
from a ranking. The hints' unit tests take their expected filters from the table of the
hints module's docstring.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from vcf_agent.query import Filters, Stores
from vcf_agent.query.hints import Vocabulary, filter_hints, merged, store_vocabulary

from helpers import ROOT

#: Overall precision@10 of the query set on the example, describe.py's template with hints
#: (`python benchmarks/bench_search_quality.py --results example=results`, docs/search-quality.md).
PRECISION_REACHED = 0.91
MARGIN = 0.04
#: ... and without hints (the template alone).
PRECISION_WITHOUT_HINTS = 0.75


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_search_quality", ROOT / "benchmarks" / "bench_search_quality.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = _bench()


@pytest.fixture(scope="module")
def example(example_run):
    workdir, _ = example_run
    results = workdir / "results"
    with Stores.open(results) as stores:
        yield stores, bench.Relevance(bench.store_rows(results)), workdir


def _table(scores) -> str:
    return "\n".join(f"{s.precision:.2f} {s.ndcg:.2f} {s.query.text}" for s in scores if s.precision is not None)


def test_the_query_set_has_at_least_30_queries_with_relevant_variants_in_the_example(example):
    _, relevance, _ = example
    queries = bench.load_queries()
    answered = [q for q in queries if relevance.ids(q.relevant) and (q.stores is None or "example" in q.stores)]
    assert len(answered) >= 30, [q.text for q in queries if q not in answered]


def test_precision_at_10_on_the_example_reaches_the_measured_figure(example):
    stores, relevance, _ = example
    scores = bench.score_queries(stores, "example", bench.load_queries(), relevance, hints=True)
    precision = bench.overall(scores, "precision")
    print(f"\nprecision@10 {precision:.3f}, nDCG@10 {bench.overall(scores, 'ndcg'):.3f}\n{_table(scores)}")
    assert precision >= PRECISION_REACHED - MARGIN, _table(scores)


def test_hints_raise_the_precision_over_the_template_alone(example):
    stores, relevance, _ = example
    queries = bench.load_queries()
    plain = bench.overall(bench.score_queries(stores, "example", queries, relevance, hints=False), "precision")
    hinted = bench.overall(bench.score_queries(stores, "example", queries, relevance, hints=True), "precision")
    assert plain >= PRECISION_WITHOUT_HINTS - MARGIN
    assert hinted > plain + 0.1


def test_filters_the_caller_gives_win_over_hints(example):
    stores, _, _ = example
    hits = stores.search("rare missense variant", Filters(consequence="synonymous_variant"), limit=10)
    assert hits and all("synonymous_variant" in h.consequence.split("&") for h in hits)
    hinted = stores.search("rare missense variant", limit=10)
    assert all("missense_variant" in h.consequence.split("&") and h.af <= 0.01 for h in hinted)


def test_hints_order_the_page_and_never_shrink_it(example):
    """Fewer variants pass the hints than the page holds: they come first, the nearest others follow."""
    stores, relevance, _ = example
    passing = relevance.ids("list_contains(terms, 'stop_gained')")
    assert 0 < len(passing) < 10
    hits = stores.search("stop gained", limit=10)
    assert len(hits) == 10
    assert {h.variant_id for h in hits[: len(passing)]} == passing


def test_the_store_vocabulary_is_the_example_vcfs(example):
    """FILTER names and sample count as bcftools reads them from the example VCF."""
    stores, _, workdir = example
    vcf = workdir / "resources" / "example" / "example.vcf.gz"
    names = subprocess.run(
        ["bcftools", "query", "-f", "%FILTER\\n", str(vcf)], capture_output=True, text=True, check=True
    )
    samples = subprocess.run(["bcftools", "query", "-l", str(vcf)], capture_output=True, text=True, check=True)
    vocabulary = store_vocabulary(stores)
    assert set(vocabulary.filters) == {n for line in names.stdout.split() for n in line.split(";")} - {"PASS", "."}
    assert vocabulary.samples == len(samples.stdout.split())
    assert {"missense_variant", "intergenic_region"} <= set(vocabulary.consequences)


# ---------------------------------------------------------------- hints (unit tests)

EXAMPLE_WORDS = Vocabulary(filters={"LowQual"}, samples=60)  # consequences not known: any term


@pytest.mark.parametrize(
    ("text", "filters", "rest"),
    [
        ("rare missense variant in a gene", {"af_max": 0.01, "consequence": "missense_variant"}, "variant in a gene"),
        ("very rare variant", {"af_max": 0.001}, "variant"),
        ("ultra-rare SNP", {"af_max": 0.001, "variant_class": "snv"}, ""),
        ("low-frequency deletion", {"af_min": 0.01, "af_max": 0.05, "variant_class": "deletion"}, ""),
        ("common synonymous SNV", {"af_min": 0.05, "consequence": "synonymous_variant", "variant_class": "snv"}, ""),
        ("singleton insertion", {"af_max": 1.5 / 120, "variant_class": "insertion"}, ""),
        ("pathogenic frameshift", {"consequence": "frameshift_variant"}, "pathogenic"),
        ("non-synonymous variant", {"consequence": "missense_variant"}, "variant"),
        ("nonsense mutation", {"consequence": "stop_gained"}, "mutation"),
        ("splice donor variant", {"consequence": "splice_donor_variant"}, "variant"),
        ("in-frame deletion", {"consequence": "inframe_deletion"}, ""),
        ("3' UTR variant", {"consequence": "3_prime_UTR_variant"}, "variant"),
        ("intergenic deletion", {"consequence": "intergenic_region", "variant_class": "deletion"}, ""),
        ("structural deletion", {"variant_class": "symbolic"}, ""),
        ("translocation", {"variant_class": "breakend"}, ""),
        ("C>T substitution", {"variant_class": "snv"}, "C>T"),
        ("failed filter", {"filter": "LowQual"}, ""),
        ("low quality insertion", {"filter": "LowQual", "variant_class": "insertion"}, ""),
        ("LowQual calls", {"filter": "LowQual"}, "calls"),
        ("common variant that passed filters", {"af_min": 0.05, "filter": "PASS"}, "variant that"),
        ("high impact variant", {}, "high impact variant"),
    ],
)
def test_words_that_name_a_filter_become_that_filter(text, filters, rest):
    assert filter_hints(text, EXAMPLE_WORDS) == (pytest.approx(filters), rest)


def test_the_planners_words_are_hints_too():
    """vcf_agent.vocabulary holds the words once for `vcf-agent ask` and the hints."""
    assert filter_hints("splicing variant", EXAMPLE_WORDS) == ({"consequence": "splice_region_variant"}, "variant")
    both = {"consequence": "non_coding_transcript_exon_variant", "variant_class": "deletion"}
    assert filter_hints("non-coding exon deletion", EXAMPLE_WORDS) == (both, "")
    assert filter_hints("symbolic allele", EXAMPLE_WORDS) == ({"variant_class": "symbolic"}, "")


@pytest.mark.parametrize("text", ["not rare", "non-coding variant", "indel", "not common", "variants in common"])
def test_negated_or_ambiguous_words_give_no_hint(text):
    found, rest = filter_hints(text, EXAMPLE_WORDS)
    assert "af_max" not in found and "filter" not in found and "variant_class" not in found
    assert rest == text


def test_without_a_vocabulary_the_first_term_is_taken_and_store_dependent_words_stay():
    assert filter_hints("intergenic singleton") == ({"consequence": "intergenic_region"}, "singleton")
    assert filter_hints("failed filter")[0] == {}  # which filter is a store's: not known
    two = Vocabulary(filters={"LowQual", "q10"})
    assert filter_hints("failed filter", two) == ({}, "failed filter")  # Filters takes one name
    vep = Vocabulary(consequences={"intergenic_variant"})
    assert filter_hints("intergenic SNV", vep)[0] == {"consequence": "intergenic_variant", "variant_class": "snv"}
    # a term the stores lack would filter out every variant: no hint, the words stay
    assert filter_hints("stop gained SNV", vep) == ({"variant_class": "snv"}, "stop gained")


def test_merged_adds_hints_only_where_the_caller_set_nothing():
    hints = {"af_max": 0.01, "consequence": "missense_variant", "variant_class": "snv"}
    assert merged(Filters(), hints) == Filters(af_max=0.01, consequence="missense_variant", variant_class="snv")
    mine = Filters(consequence="stop_gained", af_min=0.2)
    assert merged(mine, hints) == Filters(consequence="stop_gained", af_min=0.2, variant_class="snv")
