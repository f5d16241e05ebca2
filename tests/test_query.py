"""The Python query API over stores the real workflow built; expected values come from bcftools."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest

from vcf_agent import query
from vcf_agent.query import BadQuery, Filters, NotFound, Region, StoreMissing, Stores, to_jsonable, zygosity
from vcf_agent.query.graph import _GraphPool

from helpers import nonref_genotypes, run_workflow, split_records

pytestmark = pytest.mark.slow  # the query_stores workflow run

KG_MULTIALLELIC = ("22:16051453:A:C", "22:16051453:A:G")  # rs62224611, A>C,G split in two
KG_SV = "22:16050654:A:<CN3>"  # the cohort's one symbolic record, 4 ALTs, END=16063474
KG_REGION = "22:16050000-16060000"
#: bcftools arguments for "records overlapping KG_REGION"
IN_KG_REGION = ("-r", KG_REGION, "--regions-overlap", "1")
HAPLOID_SAMPLE = "37150"


@pytest.fixture(scope="module")
def stores(query_stores):
    with Stores.open(query_stores.results) as opened:
        yield opened


def is_snv(variant_id: str) -> bool:
    ref, alt = variant_id.split(":")[2:]
    return len(ref) == len(alt) == 1 and alt in "ACGT"


def is_deletion(variant_id: str) -> bool:
    """The README's rule: REF longer than ALT and sharing its first or last bases."""
    ref, alt = variant_id.split(":")[2:]
    return not alt.startswith("<") and len(ref) > len(alt) and (ref.startswith(alt) or ref.endswith(alt))


def carried(bcftools, name: str, sample: str, *view: str) -> set[str]:
    """Variants `sample` carries according to bcftools (any ALT allele in its GT, ./1 included)."""
    lines = bcftools.split(name, "%CHROM:%POS:%REF:%ALT\t[%GT]\n", view=("-s", sample, *view))
    return {vid for vid, gt in (line.split("\t") for line in lines) if set(re.split(r"[/|]", gt)) - {"0", "."}}


# ---------------------------------------------------------------- stats


def test_stats_count_what_bcftools_counts(stores, query_stores, bcftools):
    stats = stores.stats()
    inputs = query_stores.inputs
    assert stats.files == sorted(inputs)
    assert stats.samples == len({s for name in inputs for s in bcftools.samples(name)})
    assert stats.variants == stats.graph_variants == sum(split_records(path) for path in inputs.values())
    half_missing = sum(
        1
        for line in bcftools.split("annotated", "[%GT\n]")
        if "." in line and set(re.split(r"[/|]", line)) - {"0", "."}
    )
    assert stats.genotypes == sum(nonref_genotypes(path) for path in inputs.values()) + half_missing
    contigs = {c.name: c.variants for c in stats.contigs}
    assert contigs == {"1": split_records(inputs["annotated"]), "chrX": split_records(inputs["haploid"]), "22": 6139}
    assert stats.model.startswith("all-MiniLM-L6-v2") and stats.vector_dim == 384
    assert stats.genes > 0 and "info_AF" in stats.info_columns


# ---------------------------------------------------------------- variant


#: A variant's page read from the partitions' variant indexes, or from the Kuzu databases.
VARIANT_READS = pytest.mark.parametrize("read_index", [True, False], ids=["variant_index", "kuzu"])


@VARIANT_READS
@pytest.mark.parametrize("variant_id", [*KG_MULTIALLELIC, KG_SV])
def test_variant_carriers_are_bcftools_carriers(stores, bcftools, monkeypatch, variant_id, read_index):
    monkeypatch.setattr(query.stores, "READ_VARIANT_INDEX", read_index)
    record = stores.variant(variant_id)
    expected = bcftools.genotypes("kg", variant_id)
    assert {c.sample: c.gt for c in record.carriers} == expected
    assert record.counts.carriers == len(expected)
    het = bcftools.split("kg", "%REF\t%ALT[\t%SAMPLE]\n", view=("-r", variant_id.rsplit(":", 2)[0]), include='GT="het"')
    hom = bcftools.split("kg", "%REF\t%ALT[\t%SAMPLE]\n", view=("-r", variant_id.rsplit(":", 2)[0]), include='GT="AA"')
    ref, alt = variant_id.split(":")[2:]
    assert record.counts.het == sum(len(line.split("\t")) - 2 for line in het if line.split("\t")[:2] == [ref, alt])
    assert record.counts.hom_alt == sum(len(line.split("\t")) - 2 for line in hom if line.split("\t")[:2] == [ref, alt])
    assert all(c.phased == ("|" in c.gt) for c in record.carriers)
    assert [c.sample for c in record.carriers] == [s for s in bcftools.samples("kg") if s in expected]  # header order
    assert record.files == ["kg"]


def test_a_symbolic_variant_keeps_its_end_and_info(stores):
    record = stores.variant(KG_SV)
    assert (record.pos, record.end, record.variant_class) == (16050654, 16063474, "symbolic")
    assert record.info["info_AF"] == pytest.approx(0.119609)  # the third of AF=...,0.119609,...
    assert record.info["info_SVTYPE"] == "CNV"


def annotated_genes(bcftools, variant_id: str) -> set[str]:
    """The gene names (ANN field 4) of the annotated VCF's annotations of this ALT, read by bcftools."""
    chrom, pos, ref, alt = variant_id.split(":")
    ann = bcftools.split("annotated", "%REF\t%ALT\t%INFO/ANN\n", view=("-r", f"{chrom}:{pos}"))
    return {
        entry.split("|")[3]
        for line in ann
        if line.split("\t")[:2] == [ref, alt]
        for entry in line.split("\t")[2].split(",")
        if entry.split("|")[0] == alt and entry.split("|")[3]
    }


@VARIANT_READS
def test_annotated_variant_has_its_annotations_and_half_missing_carriers(stores, bcftools, monkeypatch, read_index):
    monkeypatch.setattr(query.stores, "READ_VARIANT_INDEX", read_index)
    variant_id = "1:10172:CCCTAA:C"
    record = stores.variant(variant_id, carriers=3)
    genes = annotated_genes(bcftools, variant_id)
    assert {a.gene for a in record.annotations} == genes
    assert record.gene in genes and record.consequence and record.impact
    expected = bcftools.genotypes("annotated", variant_id)
    assert record.counts.carriers == len(expected) and len(record.carriers) == min(3, len(expected))
    assert record.carriers_truncated == (len(expected) > 3)
    partial = [s for s, gt in expected.items() if "." in gt]
    assert record.counts.partial == len(partial)


def test_genes_listed_from_the_index_count_what_bcftools_finds(stores, bcftools):
    """A gene's annotated variants: the split records with an ANN entry of their ALT in it."""
    annotated: Counter = Counter()
    for line in bcftools.split("annotated", "%ALT\t%INFO/ANN\n", include='INFO/ANN!="."'):
        alt, ann = line.split("\t")
        annotated.update({e.split("|")[3] for e in ann.split(",") if e.split("|")[0] == alt and e.split("|")[3]})
    listed = {g.gene: g for g in stores.list_genes()}
    assert annotated and {gene: listed[gene].annotated for gene in annotated} == dict(annotated)


def test_haploid_calls_are_hemizygous(stores, bcftools):
    result = stores.sample(HAPLOID_SAMPLE, limit=5)
    alt = bcftools.split("haploid", "%POS\n", view=("-s", HAPLOID_SAMPLE), include='GT="alt"')
    assert result.counts.carriers == result.counts.hemizygous == len(alt)
    assert set(result.variants.column("zygosity").to_pylist()) == {"hemizygous"}
    assert result.variants.column("gt").to_pylist() == ["1"] * 5


# ---------------------------------------------------------------- samples, shared, regions


def test_sample_counts_are_bcftools_counts(stores, bcftools):
    result = stores.sample("HG00096", limit=10)
    view = ("-s", "HG00096")
    assert result.counts.het == len(bcftools.split("kg", "%POS\n", view=view, include='GT="het"'))
    assert result.counts.hom_alt == len(bcftools.split("kg", "%POS\n", view=view, include='GT="AA"'))
    assert result.counts.carriers == len(carried(bcftools, "kg", "HG00096"))
    assert result.truncated and result.variants.num_rows == 10 and result.files == ["kg"]
    positions = result.variants.column("pos").to_pylist()
    assert positions == sorted(positions)


def test_sample_counts_by_zygosity_and_phase_are_bcftools_counts(stores, bcftools):
    """Every zygosity the sample indexes count (half-missing ./1 among them), against bcftools."""
    expected: dict[str, Counter] = defaultdict(Counter)
    for line in bcftools.split("annotated", "[%SAMPLE\t%GT\n]"):
        sample, gt = line.split("\t")
        alleles = re.split(r"[/|]", gt)
        if not set(alleles) - {"0", "."}:
            continue
        if len(alleles) == 1:
            kind = "hemizygous"
        elif "." in alleles:
            kind = "partial"
        else:
            kind = "hom_alt" if "0" not in alleles else "het"
        expected[sample].update({kind: 1, "carriers": 1, "phased": int("|" in gt)})
    sample = max(expected, key=lambda name: (expected[name]["partial"], name))
    assert expected[sample]["partial"] > 0
    counts = stores.sample(sample, limit=1).counts
    assert counts.model_dump() == {k: expected[sample][k] for k in counts.model_dump()}


def test_counts_from_the_sample_indexes_equal_the_graphs_aggregates(stores):
    # a region of the whole contig is a condition in Cypher: the counts then come from Kuzu's
    # aggregate over the partitions instead of the sample indexes
    whole_contig = Filters(region=Region.parse("22:1-300000000"))
    for sample in ("HG00096", "HG00100", "NA12878"):
        if sample in stores.sample_names():
            assert stores.sample(sample, limit=1).counts == stores.sample(sample, whole_contig, limit=1).counts
    pair = ["HG00096", "HG00097"]
    assert stores.shared(pair, limit=1).total == stores.shared(pair, whole_contig, limit=1).total


def test_sample_with_filters(stores, bcftools):
    filters = Filters(region=Region.parse(KG_REGION), af_max=0.5, variant_class="snv")
    result = stores.sample("HG00096", filters, limit=1000)
    expected = {v for v in carried(bcftools, "kg", "HG00096", *IN_KG_REGION) if is_snv(v)}
    in_af = set(bcftools.ids("kg", view=IN_KG_REGION, include="INFO/AF<=0.5"))
    assert set(result.variants.column("variant_id").to_pylist()) == expected & in_af
    assert result.counts.carriers == len(expected & in_af)


def test_shared_are_the_variants_both_samples_carry(stores, bcftools):
    result = stores.shared(["HG00096", "HG00097"], limit=1000)
    both = carried(bcftools, "kg", "HG00096") & carried(bcftools, "kg", "HG00097")
    assert result.total == len(both) and set(result.variants.column("variant_id").to_pylist()) == both
    for row in result.variants.slice(0, 5).to_pylist():
        genotypes = bcftools.genotypes("kg", row["variant_id"])
        assert row["genotypes"] == [genotypes["HG00096"], genotypes["HG00097"]]


def test_shared_by_three_samples_with_their_genotypes(stores, bcftools):
    trio = ["HG00096", "HG00097", "HG00099"]
    result = stores.shared(trio, limit=1000)
    both = set.intersection(*(carried(bcftools, "kg", name) for name in trio))
    assert result.total == len(both) and set(result.variants.column("variant_id").to_pylist()) == both
    for row in result.variants.slice(0, 5).to_pylist():
        genotypes = bcftools.genotypes("kg", row["variant_id"])
        assert row["genotypes"] == [genotypes[name] for name in trio]


#: The three ways of reading carriers by variant: the variant indexes, or Kuzu by a query per
#: variant or by one join of them all.
CARRIER_READS = pytest.mark.parametrize(
    ("read_index", "key_lookup_seconds"),
    [(True, 0.0), (False, 0.0), (False, 1.0)],
    ids=["variant_index", "key_lookups", "one_join"],
)


@CARRIER_READS
def test_region_returns_the_overlapping_records(stores, bcftools, monkeypatch, read_index, key_lookup_seconds):
    monkeypatch.setattr(query.stores, "READ_VARIANT_INDEX", read_index)
    monkeypatch.setattr(query.stores, "KEY_LOOKUP_SECONDS", key_lookup_seconds)
    result = stores.region(KG_REGION, limit=1000)
    expected = bcftools.ids("kg", view=IN_KG_REGION)
    assert result.total == len(expected) and sorted(result.variants.column("variant_id").to_pylist()) == sorted(
        expected
    )
    rows = result.variants.to_pylist()
    assert [r["pos"] for r in rows] == sorted(r["pos"] for r in rows)
    for row in rows[:3]:
        assert row["carriers"] == len(bcftools.genotypes("kg", row["variant_id"]))


def test_a_region_starting_inside_a_long_deletion_includes_it(stores):
    # the <CN3> record spans 16050654-16063474: a region inside it must find it
    result = stores.region("22:16063000-16063100", limit=1000)
    assert KG_SV in result.variants.column("variant_id").to_pylist()


def test_whole_contig_and_limits(stores, query_stores):
    result = stores.region("chrX", limit=7)
    assert result.total == split_records(query_stores.inputs["haploid"])
    assert result.variants.num_rows == 7 and result.truncated


def test_region_af_and_filter_filters_match_bcftools(stores, bcftools):
    result = stores.region("chrX", Filters(filter="my_snp_filter"), limit=1000)
    expected = bcftools.ids("haploid", include='FILTER="my_snp_filter"')
    assert sorted(result.variants.column("variant_id").to_pylist()) == sorted(expected)
    result = stores.region(KG_REGION, Filters(af_min=0.1, af_max=0.2), limit=1000)
    expected = bcftools.ids("kg", view=IN_KG_REGION, include="INFO/AF>=0.1 && INFO/AF<=0.2")
    assert sorted(result.variants.column("variant_id").to_pylist()) == sorted(expected)


@pytest.mark.parametrize("af_index_max_share", [0.0, 2.0], ids=["scanned", "indexed"])
def test_search_with_an_af_range_scanned_or_looked_up_in_the_index_finds_what_bcftools_finds(
    stores, bcftools, monkeypatch, af_index_max_share
):
    monkeypatch.setattr(query.vectors, "AF_INDEX_MAX_SHARE", af_index_max_share)
    assert stores.lance.af_indexed and stores.lance.af_scan(0.1, 0.2) == (af_index_max_share == 0.0)
    hits = stores.search("variant", Filters(region=Region.parse(KG_REGION), af_min=0.1, af_max=0.2), limit=1000)
    expected = bcftools.ids("kg", view=IN_KG_REGION, include="INFO/AF>=0.1 && INFO/AF<=0.2")
    assert expected and sorted(h.variant_id for h in hits) == sorted(expected)


def test_gene_and_consequence_filters_select_matching_rows(stores):
    everything = stores.region("1", limit=1000).variants.to_pylist()
    by_gene = stores.region("1", Filters(gene="WASH7P"), limit=1000).variants.column("variant_id").to_pylist()
    assert by_gene and sorted(by_gene) == sorted(r["variant_id"] for r in everything if r["gene"] == "WASH7P")
    term = "intron_variant"  # one of the '&'-joined terms, not a substring match
    by_term = stores.region("1", Filters(consequence=term), limit=1000).variants.column("variant_id").to_pylist()
    expected = [r["variant_id"] for r in everything if r["consequence"] and term in r["consequence"].split("&")]
    assert by_term and sorted(by_term) == sorted(expected)


def test_a_consequence_term_no_variant_holds_matches_nothing(stores, bcftools):
    from vcf_agent.vocabulary import CONSEQUENCE_WORDS

    held = set(stores.graph.vocabulary["consequences"])
    term = next(t for _, terms in CONSEQUENCE_WORDS for t in terms if t not in held)
    assert not [line for line in bcftools.split("annotated", "%INFO/ANN\n") if term in line]
    assert stores.region("1", Filters(consequence=term), limit=10).total == 0


# ---------------------------------------------------------------- vector search


def test_search_by_a_stored_description_finds_those_variants_first(stores):
    record = stores.variant(KG_MULTIALLELIC[0])
    hits = stores.search(record.text, limit=5)
    assert hits[0].text == record.text and hits[0].similarity == pytest.approx(1.0, abs=1e-4)
    similarities = [h.similarity for h in hits]
    assert similarities == sorted(similarities, reverse=True)


def test_prefilter_returns_every_match_when_fewer_than_the_limit(stores, bcftools):
    """Filters apply before the search: asking for more than exist returns exactly those that exist."""
    deletions = [v for v in bcftools.ids("kg", view=IN_KG_REGION) if is_deletion(v)]
    hits = stores.search("deletion", Filters(region=Region.parse(KG_REGION), variant_class="deletion"), limit=1000)
    assert sorted(h.variant_id for h in hits) == sorted(deletions)


@CARRIER_READS
def test_hits_carry_their_carriers_and_genes(stores, bcftools, monkeypatch, read_index, key_lookup_seconds):
    """Each way of reading the hits' carriers and genes (the variant indexes, a query per hit, one
    join of all) agrees with bcftools."""
    monkeypatch.setattr(query.stores, "READ_VARIANT_INDEX", read_index)
    monkeypatch.setattr(query.stores, "KEY_LOOKUP_SECONDS", key_lookup_seconds)
    hits = stores.search("single-nucleotide variant, common", Filters(region=Region.parse(KG_REGION)), carriers=3)
    for hit in hits[:3]:
        expected = bcftools.genotypes("kg", hit.variant_id)
        in_header_order = [s for s in bcftools.samples("kg") if s in expected]
        assert hit.carriers == len(expected) and hit.carrier_samples == in_header_order[:3]
    annotated = stores.search("upstream gene variant", Filters(region=Region.parse("1")), limit=3)
    assert all(hit.genes and hit.gene in hit.genes for hit in annotated)
    for hit in annotated:  # each gene once, in name order, however many annotations name it
        assert hit.genes == sorted(annotated_genes(bcftools, hit.variant_id))


@pytest.mark.parametrize("in_list_max", [query.PREFILTER_IN_MAX, 5])
def test_carried_by_keeps_only_the_samples_variants(stores, bcftools, monkeypatch, in_list_max):
    """Both ways of applying carried_by (an id list before the search, a check after it) agree."""
    monkeypatch.setattr(query.stores, "PREFILTER_IN_MAX", in_list_max)
    mine = carried(bcftools, "kg", "HG00096")
    hits = stores.search("rare deletion", Filters(carried_by="HG00096"), limit=20)
    assert len(hits) == 20 and {h.variant_id for h in hits} <= mine
    reference = stores.search("rare deletion", Filters(carried_by="HG00096"), limit=20)
    assert [round(h.distance, 5) for h in hits] == [round(h.distance, 5) for h in reference]


def test_similar_excludes_the_variant_and_keeps_to_the_region(stores):
    region = Region(chrom="22", start=16_100_000, end=16_200_000)
    hits = stores.similar(KG_MULTIALLELIC[1], Filters(region=region), limit=10)
    assert len(hits) == 10 and KG_MULTIALLELIC[1] not in {h.variant_id for h in hits}
    assert all(h.chrom == "22" and region.start <= h.pos <= region.end for h in hits)
    own = stores.variant(KG_MULTIALLELIC[1]).text
    assert hits[0].text == own  # the same description elsewhere in the region


def test_postfilter_may_return_fewer(stores):
    filters = Filters(region=Region.parse("chrX"))
    assert len(stores.search("deletion", filters, limit=5, prefilter=False)) <= 5
    assert len(stores.search("deletion", filters, limit=5)) == 5


# ---------------------------------------------------------------- errors and safety


def test_unknown_things_are_not_found(stores):
    with pytest.raises(NotFound, match="unknown variant"):
        stores.variant("22:1:A:G")
    with pytest.raises(NotFound, match="unknown sample"):
        stores.sample("nobody")
    with pytest.raises(NotFound, match="unknown contig 'chr99'"):
        stores.region("chr99:1-10")
    with pytest.raises(BadQuery, match=r"region '22:abc-5': malformed.*no contig '22:abc-5'"):  # names may hold ':'
        stores.region("22:abc-5")
    with pytest.raises(NotFound, match="unknown variant"):
        stores.similar("22:1:A:G")


@pytest.mark.parametrize(
    "make",
    [
        lambda: Region.parse("22:10-5"),
        lambda: Region.parse("22:0-5"),
        lambda: Filters(af_min=2),
        lambda: Filters(af_min=0.5, af_max=0.1),
        lambda: Filters(af_max=math.nan),
        lambda: Filters(variant_class="big"),
        lambda: Filters(gene="DDX11L1' OR '1'='1"),
        lambda: Filters(consequence="missense_variant%"),
        lambda: Filters(filter="PASS; DROP TABLE variants"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(make):
    with pytest.raises(BadQuery) as error:
        make()
    assert "\n" not in str(error.value)


def test_bad_limits_and_too_few_samples(stores):
    with pytest.raises(BadQuery):
        stores.search("x", limit=0)
    with pytest.raises(BadQuery):
        stores.region("22", limit=query.MAX_LIMIT + 1)
    with pytest.raises(BadQuery, match="at least two"):
        stores.shared(["HG00096", "HG00096"])


@pytest.mark.parametrize(
    "hostile",
    [
        "HG00096' OR '1'='1",
        'HG00096" OR 1=1 --',
        "x}) MATCH (n) DETACH DELETE n //",
        "HG00096'); DROP TABLE variants; --",
    ],
)
def test_hostile_text_is_only_ever_a_value(stores, hostile):
    before = stores.stats()
    with pytest.raises(NotFound):
        stores.sample(hostile)
    with pytest.raises(NotFound):
        stores.variant(hostile)
    with pytest.raises(NotFound):
        stores.region(Region(chrom=hostile))
    with pytest.raises(NotFound):
        stores.search("deletion", Filters(carried_by=hostile))
    hits = stores.search(hostile, limit=3)  # free text is embedded, never parsed
    assert len(hits) == 3
    assert stores.table.count_rows() == before.variants
    canonical = stores.graph.query("MATCH (v:Variant) WHERE v.canonical RETURN count(*) AS n")  # each partition's
    assert sum(row["n"] for row in canonical) == before.graph_variants


def test_a_missing_store_is_one_line(tmp_path):
    with pytest.raises(StoreMissing, match="no store here"):
        Stores.open(tmp_path)


# ---------------------------------------------------------------- threads, json


def test_concurrent_queries_agree_with_serial_ones(stores):
    calls = [
        lambda: to_jsonable(stores.variant(KG_SV, carriers=20)),
        lambda: to_jsonable(stores.sample("HG00097", limit=20)),
        lambda: to_jsonable(stores.region(KG_REGION, limit=20)),
        lambda: to_jsonable(stores.shared(["HG00096", "HG00099"], limit=20)),
        lambda: [h.variant_id for h in stores.similar(KG_MULTIALLELIC[0], limit=5)],
        lambda: [round(h.distance, 5) for h in stores.search("insertion in a gene", limit=5)],
    ]
    serial = [call() for call in calls]
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(calls[i % len(calls)]) for i in range(48)]
        results = [future.result() for future in futures]
    assert all(result == serial[i % len(calls)] for i, result in enumerate(results))


def test_results_are_plain_json(stores):
    import json

    for result in (stores.stats(), stores.variant(KG_SV, carriers=2), stores.region(KG_REGION, limit=2)):
        assert json.loads(json.dumps(to_jsonable(result), allow_nan=False))


@pytest.mark.parametrize(
    ("gt", "alt_count", "ploidy", "expected"),
    [("0|1", 1, 2, "het"), ("1/1", 2, 2, "hom_alt"), ("1", 1, 1, "hemizygous"), ("./1", 1, 2, "partial")],
)
def test_zygosity_words(gt, alt_count, ploidy, expected):
    assert zygosity(gt, alt_count, ploidy) == expected


def test_carriers_tallied_at_once_count_each_zygosity_and_phase_as_written():
    from vcf_agent.query.results import Carrier, Counts, tally_carriers

    # (gt, phased, alt_count, ploidy): 3 het (2 phased), 2 hom_alt (1 phased), 1 hemizygous, 2 partial
    written = [("0|1", True, 1, 2), ("1|0", True, 1, 2), ("0/1", False, 1, 2), ("1/1", False, 2, 2),
               ("1|1", True, 2, 2), ("1", False, 1, 1), ("./1", False, 1, 2), ("1/.", False, 1, 2)]  # fmt: skip
    carriers = [
        Carrier(
            sample=f"s{i}",
            gt=gt,
            phased=phased,
            zygosity=zygosity(gt, alt, ploidy),
            alt_count=alt,
            ploidy=ploidy,
            dp=None,
            gq=None,
            source="v",
        )
        for i, (gt, phased, alt, ploidy) in enumerate(written)
    ]
    counts = Counts(carriers=1, het=1)  # added to, as a partition's tally is
    tally_carriers(counts, carriers)
    assert counts == Counts(carriers=9, het=4, hom_alt=2, hemizygous=1, partial=2, phased=3)


# ---------------------------------------------------------------- a partitioned graph


@pytest.fixture(scope="module")
def partitioned(query_stores, tmp_path_factory):
    """The same inputs built again with small shards and the graph cut into partitions of at
    most 50,000 genotypes (config kuzu.partition_edges): one of ~80,000 per kg shard of 1,000
    records, so each kg shard is a partition of its own, and each small VCF is a layer of one."""
    workdir = tmp_path_factory.mktemp("partitioned")
    config = {
        "vcfs": {name: str(path) for name, path in query_stores.inputs.items()},
        "reference": None,
        "shard": {"records": 1000},
        "kuzu": {"partition_edges": 50_000},
    }
    run_workflow(workdir, config, "results/lancedb.json", "results/kuzu.json")
    with Stores.open(workdir / "results") as opened:
        yield opened


def test_a_partitioned_graph_counts_and_answers_as_one_partition(stores, partitioned, query_stores, bcftools):
    manifest, whole = partitioned.manifests["kuzu.json"], stores.manifests["kuzu.json"]
    assert whole["partitions"] == len(query_stores.inputs) and manifest["partitions"] >= 4  # one layer per VCF
    assert manifest["counts"] == whole["counts"]
    stats, inputs = partitioned.stats(), query_stores.inputs
    assert stats.graph_variants == sum(split_records(path) for path in inputs.values())
    calls = bcftools.split("annotated", "[%GT\n]")
    half_missing = sum(1 for line in calls if "." in line and set(re.split(r"[/|]", line)) - {"0", "."})
    assert stats.genotypes == sum(nonref_genotypes(path) for path in inputs.values()) + half_missing
    one = stores.stats()
    assert (stats.samples, stats.genes, stats.contigs) == (one.samples, one.genes, one.contigs)
    samples = stores.sample_names()
    kg = bcftools.samples("kg")
    calls = [
        lambda s: s.variant(KG_SV),
        lambda s: s.variant(KG_MULTIALLELIC[1], carriers=5),
        lambda s: s.sample(kg[0], limit=100),
        lambda s: s.sample(kg[7], limit=5000),  # walks every partition
        lambda s: s.sample(HAPLOID_SAMPLE, limit=10),
        lambda s: s.sample(kg[3], Filters(region=Region.parse("22:16100000-16300000")), limit=50),
        lambda s: s.sample(kg[3], Filters(af_max=0.05, variant_class="snv"), limit=50),
        lambda s: s.sample(kg[5], Filters(carried_by=kg[6]), limit=20),
        lambda s: s.shared([kg[0], kg[1]], limit=100),
        lambda s: s.shared([kg[2], kg[4]], Filters(af_min=0.2), limit=30),
        lambda s: s.region(KG_REGION, limit=100),
        lambda s: s.region("22:16000000-16500000", limit=2000),
        lambda s: s.region("22:16200000-16400000", Filters(carried_by=kg[9]), limit=100),
        lambda s: [(h.variant_id, h.carriers, h.carrier_samples, h.genes) for h in s.similar(KG_SV, limit=20)],
        lambda s: s.resolve_variant("rs62224611"),
        lambda s: (s.list_samples(), s.list_genes(), s.list_files()),
    ]
    for call in calls:
        assert to_jsonable(call(partitioned)) == to_jsonable(call(stores))
    assert samples == partitioned.sample_names()


# ---------------------------------------------------------------- partitions opened


def test_hits_and_regions_open_no_partition(query_stores):
    # their carriers and genes come from the partitions' variant indexes
    with Stores.open(query_stores.results) as fresh:
        fresh.list_files()  # read once per layer (search's hints name files), then cached
        opened_at_start = set(fresh.graph._open)
        hits = fresh.similar(KG_MULTIALLELIC[1], limit=20, carriers=4) + fresh.search("upstream gene variant", limit=20)
        assert any(hit.carriers for hit in hits) and any(hit.genes for hit in hits)
        assert any(row["carriers"] for row in fresh.region(KG_REGION, limit=200).variants.to_pylist())
        assert len(fresh.graph.partitions) > 2 and set(fresh.graph._open) == opened_at_start


def test_variant_pages_open_no_partition_and_hold_bcftools_depths(query_stores, bcftools, monkeypatch):
    # genotypes, DP, GQ, files and annotations come from the partitions' variant indexes
    annotated = bcftools.split("annotated", "%CHROM:%POS:%REF:%ALT\n", include='INFO/ANN!="."')[:3]
    haploid = bcftools.split("haploid", "%CHROM:%POS:%REF:%ALT\n")[:3]
    ids = [*annotated, *haploid, KG_MULTIALLELIC[0], KG_SV]
    with Stores.open(query_stores.results) as fresh:
        opened_at_start = set(fresh.graph._open)
        pages = {vid: fresh.variant(vid, carriers=4) for vid in ids}
        assert set(fresh.graph._open) == opened_at_start
        monkeypatch.setattr(query.stores, "READ_VARIANT_INDEX", False)
        for vid, page in pages.items():  # the same page as the databases give
            assert to_jsonable(page) == to_jsonable(fresh.variant(vid, carriers=4)), vid
    assert any(page.annotations for page in pages.values()) and any(page.carriers for page in pages.values())
    for name, vid in [*(("annotated", v) for v in annotated), *(("haploid", v) for v in haploid)]:
        chrom, pos, ref, alt = vid.split(":")
        rows = bcftools.split(name, "%REF\t%ALT[\t%SAMPLE=%GT=%DP=%GQ]\n", view=("-r", f"{chrom}:{pos}"))
        fields = next(line.split("\t")[2:] for line in rows if line.split("\t")[:2] == [ref, alt])
        written = {s: (gt, dp, gq) for s, gt, dp, gq in (f.split("=") for f in fields)}
        for carrier in pages[vid].carriers:
            gt, dp, gq = written[carrier.sample]
            assert (carrier.gt, carrier.dp, carrier.gq) == (
                gt,
                None if dp == "." else int(dp),
                None if gq == "." else int(gq),
            )


def test_concurrent_queries_over_more_partitions_than_the_cap_all_answer(stores):
    # a partition just opened was closed again when every older one was busy (KeyError)
    pool = _GraphPool(stores.graph.path, max_open=1)
    parts = [part for _ in range(20) for part in range(len(pool.partitions))]
    try:
        with ThreadPoolExecutor(8) as threads:
            counts = list(threads.map(lambda p: pool.query("MATCH (v:Variant) RETURN count(*) AS n", None, p), parts))
        expected = [int(pool.partitions[p]["counts"]["Variant"]) for p in parts]
        assert [rows[0]["n"] for rows in counts] == expected and len(pool.partitions) > 2
    finally:
        pool.close()
