"""Search quality: precision@10 and nDCG@10 of `Stores.search` on queries in a user's words.

Each query of benchmarks/search_queries.yaml carries a relevance rule, a DuckDB
predicate over the columns of the store's variant rows (variant_class, consequence,
filter, info_AF, info_CLNSIG, gene, impact, ref, alt, ...; see RULE_COLUMNS for the
derived ones). The relevant set of a query is the rows the rule selects: it comes
from the columns, never from a ranking. A query whose rule selects nothing in a
store is listed as n/a for that store.

    precision@10 = relevant hits among the top 10 / min(10, relevant variants)
    nDCG@10      = DCG of the top 10 (gain 1 per relevant hit, log2 discount) / the ideal DCG

(the denominator min(10, R) lets a query with R < 10 relevant variants reach 1.0).
Searches go through the real `Stores.search` (the stores' ONNX query model, LanceDB,
prefilters) with filter hints off and on. `--describe` also measures the descriptions
that vcf_agent.embedding.describe writes now (or `--template`): every row is described
again, embedded with the stores' model, and written to a scratch copy of the LanceDB
table beside the same Kuzu graph; the stores themselves are not changed.

    snakemake --cores 2                                   # the bundled example -> results/
    python benchmarks/bench_search_quality.py --results example=results --real /tmp/sq-real
    python benchmarks/bench_search_quality.py --results example=results --describe --out docs/x.md

--real WORKDIR builds (once) the stores of two annotated real files of $VCF_TEST_DATA
(cyvcf2 test.vcf.gz: SnpEff ANN and VEP CSQ, VQSR filters; test-haploidX.vcf: VEP CSQ)
in WORKDIR with the workflow and adds them as store "real".
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("VCF_TEST_DATA", ROOT.parent / "shared" / "data"))
QUERIES = ROOT / "benchmarks" / "search_queries.yaml"
K = 10
#: Annotated real files for --real (relative to $VCF_TEST_DATA).
REAL_FILES = {"annotated": "edge/cyvcf2/test.vcf.gz", "haploid": "edge/cyvcf2/test-haploidX.vcf"}
#: Columns a rule may use besides the store's own (missing ones are null, so a rule
#: about ClinVar selects nothing in a store without CLNSIG):
RULE_COLUMNS = """
    string_split(coalesce(consequence, ''), '&') AS terms,
    coalesce(filter NOT IN ('PASS', '.'), false) AS failed,
    lower(info_CLNSIG) AS clnsig,
    info_AF AS af,
    info_AC AS ac,
    abs(length(alt) - length(ref)) AS indel_length
"""
#: Columns the rules read, with the type they get where a store lacks them.
OPTIONAL_COLUMNS = {
    "gene": pa.string(),
    "consequence": pa.string(),
    "impact": pa.string(),
    "filter": pa.string(),
    "info_AF": pa.float64(),
    "info_AC": pa.int64(),
    "info_CLNSIG": pa.string(),
}


@dataclass(frozen=True)
class Query:
    text: str
    relevant: str
    #: stores the query is meant for (None: all), e.g. one that names a gene of the example
    stores: tuple[str, ...] | None = None


@dataclass
class Score:
    query: Query
    relevant: int
    precision: float | None = None
    ndcg: float | None = None
    top: list[str] = field(default_factory=list)


def load_queries(path: Path = QUERIES) -> list[Query]:
    items = yaml.safe_load(path.read_text())["queries"]
    return [
        Query(item["text"], item["relevant"], tuple(item["stores"]) if "stores" in item else None) for item in items
    ]


# ---------------------------------------------------------------- metrics


def precision_at(ranked: Sequence[str], relevant: set[str], k: int = K) -> float:
    return sum(v in relevant for v in ranked[:k]) / min(k, len(relevant))


def ndcg_at(ranked: Sequence[str], relevant: set[str], k: int = K) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, v in enumerate(ranked[:k]) if v in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal


def overall(scores: Sequence[Score], what: str) -> float | None:
    values = [getattr(s, what) for s in scores if getattr(s, what) is not None]
    return sum(values) / len(values) if values else None


# ---------------------------------------------------------------- relevance


def read_table(results: Path, *, vectors: bool = True) -> pa.Table:
    """Every row of the LanceDB table of `results` (read with LanceDB itself)."""
    import lancedb

    table = lancedb.connect(os.path.realpath(results / "lancedb")).open_table("variants")
    columns = [name for name in table.schema.names if vectors or name != "vector"]
    return table.search().select(columns).limit(table.count_rows()).to_arrow()


def store_rows(results: Path) -> pa.Table:
    """Every variant row of the stores (no vectors), with the rule columns a store may lack as nulls."""
    rows = read_table(results, vectors=False)
    for name, kind in OPTIONAL_COLUMNS.items():
        if name not in rows.schema.names:
            rows = rows.append_column(name, pa.nulls(rows.num_rows, kind))
    return rows


class Relevance:
    """The relevant variant ids of each rule, by DuckDB over the store's rows."""

    def __init__(self, rows: pa.Table) -> None:
        self.con = duckdb.connect()
        self.con.register("stored", rows)
        self.con.execute(f"CREATE VIEW variants AS SELECT *, {RULE_COLUMNS} FROM stored")

    def ids(self, rule: str) -> set[str]:
        try:
            rows = self.con.execute(f"SELECT variant_id FROM variants WHERE {rule}").fetchall()
        except duckdb.Error as error:
            raise SystemExit(f"{QUERIES.name}: rule {rule!r}: {error}") from None
        return {row[0] for row in rows}


def score_queries(
    stores, store_name: str, queries: Sequence[Query], relevance: Relevance, *, hints: bool
) -> list[Score]:
    scores = []
    for query in queries:
        relevant = relevance.ids(query.relevant)
        score = Score(query, len(relevant))
        if relevant and (query.stores is None or store_name in query.stores):
            ranked = [hit.variant_id for hit in stores.search(query.text, limit=K, carriers=0, hints=hints)]
            score.precision, score.ndcg = precision_at(ranked, relevant), ndcg_at(ranked, relevant)
            score.top = ranked
        scores.append(score)
    return scores


# ---------------------------------------------------------------- descriptions of describe.py


@contextmanager
def redescribed(results: Path, template: str | None) -> Iterator[Path]:
    """A results folder whose LanceDB table holds the descriptions describe.py writes now (or `template`).

    Same rows and Kuzu graph (a symlink to the live build); text and vector replaced.
    """
    import lancedb

    from vcf_agent.embedding.describe import Describer
    from vcf_agent.embedding.embed import embed_texts, load_model

    rows = read_table(results)
    texts = Describer(template).describe(rows)
    distinct = sorted(set(texts))
    vectors = embed_texts(distinct, loaded=load_model())
    index = {text: i for i, text in enumerate(distinct)}
    picked = vectors[np.fromiter((index[t] for t in texts), dtype=np.int64, count=len(texts))]
    vector_type = rows.schema.field("vector").type
    rows = rows.set_column(rows.schema.get_field_index("text"), "text", pa.array(texts, pa.string()))
    flat = pa.array(picked.reshape(-1), pa.float32())
    rows = rows.set_column(
        rows.schema.get_field_index("vector"), "vector", pa.FixedSizeListArray.from_arrays(flat, vector_type.list_size)
    )
    with tempfile.TemporaryDirectory(prefix="search-quality-") as scratch:
        out = Path(scratch) / "results"
        out.mkdir()
        lancedb.connect(str(Path(scratch) / "lance-build")).create_table("variants", rows)
        (out / "lancedb").symlink_to(Path(scratch) / "lance-build")
        (out / "kuzu").symlink_to(Path(os.path.realpath(results / "kuzu")))
        for manifest in ("lancedb.json", "kuzu.json"):
            shutil.copy(results / manifest, out / manifest)
        yield out


# ---------------------------------------------------------------- real annotated stores


def build_real(workdir: Path) -> Path:
    """The stores of REAL_FILES, built by the workflow in `workdir` (kept for later runs)."""
    results = workdir / "results"
    if (results / "lancedb.json").exists() and (results / "kuzu.json").exists():
        return results
    workdir.mkdir(parents=True, exist_ok=True)
    config = {"vcfs": {name: str(DATA / path) for name, path in REAL_FILES.items()}, "reference": None}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    snakemake = Path(sys.executable).with_name("snakemake")
    command = [str(snakemake), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(workdir / "config.yaml"), "--workflow-profile", str(ROOT / "profiles" / "default"),
               "--cores", "2", "results/lancedb.json", "results/kuzu.json"]  # fmt: skip
    subprocess.run(command, check=True)
    return results


# ---------------------------------------------------------------- report


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def markdown(store: str, runs: dict[str, list[Score]]) -> str:
    """One table per store: a row per query, precision@10 and nDCG@10 per configuration."""
    names = list(runs)
    head = "| # | query | relevant | " + " | ".join(f"P@10 {n} | nDCG@10 {n}" for n in names) + " |"
    lines = [f"### {store}", "", head, "|" + "---|" * (3 + 2 * len(names))]
    first = runs[names[0]]
    for i, score in enumerate(first):
        cells = [f"{_figure(runs[n][i].precision)} | {_figure(runs[n][i].ndcg)}" for n in names]
        lines.append(f"| {i + 1} | {score.query.text} | {score.relevant} | " + " | ".join(cells) + " |")
    cells = [f"**{_figure(overall(runs[n], 'precision'))}** | **{_figure(overall(runs[n], 'ndcg'))}**" for n in names]
    counted = sum(s.precision is not None for s in first)
    lines.append(f"| | **overall** ({counted} queries) | | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_store(name: str, results: Path, queries: Sequence[Query], *, describe: bool, template: str | None) -> str:
    from vcf_agent.query import Stores

    runs: dict[str, list[Score]] = {}
    relevance = Relevance(store_rows(results))
    with Stores.open(results) as stores:
        runs["stored"] = score_queries(stores, name, queries, relevance, hints=False)
        runs["stored+hints"] = score_queries(stores, name, queries, relevance, hints=True)
    if describe:
        with redescribed(results, template) as folder, Stores.open(folder) as stores:
            runs["describe.py"] = score_queries(stores, name, queries, relevance, hints=False)
            runs["describe.py+hints"] = score_queries(stores, name, queries, relevance, hints=True)
    return markdown(name, runs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", action="append", default=[], metavar="NAME=PATH", help="a results folder")
    parser.add_argument("--real", type=Path, metavar="WORKDIR", help="build/use the annotated real stores here")
    parser.add_argument("--queries", type=Path, default=QUERIES)
    parser.add_argument("--describe", action="store_true", help="also measure describe.py's descriptions")
    parser.add_argument("--template", help="with --describe: this template instead of describe.py's default")
    parser.add_argument("--out", type=Path, help="also write the Markdown tables here")
    args = parser.parse_args(argv)
    stores = dict(item.split("=", 1) for item in args.results)
    if args.real:
        stores["real"] = build_real(args.real)
    if not stores:
        parser.error("give --results NAME=PATH and/or --real WORKDIR")
    queries = load_queries(args.queries)
    tables = [
        run_store(name, Path(path), queries, describe=args.describe, template=args.template)
        for name, path in stores.items()
    ]
    text = "\n".join(tables)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
