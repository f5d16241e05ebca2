"""One shard of a normalised BCF to Parquet: variants, genotypes and annotations, through DuckDB.

bcftools query prints the shard as tab-separated text into a pipe; DuckDB reads
the pipe (`/dev/fd/N`) with the column types taken from the VCF header, derives
variant ids, classes and annotations in SQL, and writes Parquet. DuckDB's
memory_limit comes from the job's declared memory, and it spills to the job's
scratch folder instead of growing, so a shard of any size runs in the memory
the rule declared. DuckDB runs on one thread whatever the job's threads: a pipe
is one stream that a second thread cannot share, and each thread keeps its own
read buffers (a 10,000-record shard of 2,504 samples peaked at 321 MiB on two
threads, 194 MiB on one, in the same time). The job declares one core: bcftools and DuckDB
together used 0.8-0.9 of one (cpu_time over wall, full-size scale cohort).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from vcf_agent.errors import TooLittleMemory, fail
from vcf_agent.files import atomic_files, write_json
from vcf_agent.ingest.bcftools import bcftools, pipeline
from vcf_agent.ingest.header import AnnotationLayout, FieldDef, VcfHeader, read_header
from vcf_agent.ingest.shards import Shard
from vcf_agent.logs import log
from vcf_agent.resources import MIN_CONVERT_MEM_MB, MIN_DUCKDB_MB, PROCESS_OVERHEAD_MB, duckdb_limit_mb
from vcf_agent.schema import (
    ANNOTATION_COLUMNS,
    DUPLICATE_SEPARATOR,
    DUPLICATE_TAG,
    GENOTYPE_COLUMNS,
    INFO_PREFIX,
    INTERNAL_TAGS,
    ORIGINAL_ALT_TAG,
    ORIGINAL_REF_TAG,
    info_column_name,
)

#: bcftools prints '.' for a missing value.
MISSING = "."
#: Longest line DuckDB accepts from bcftools (a 541 kB gVCF record exists in the wild). It is
#: also the reader's buffer: DuckDB's default, 16 lines of it (256 MiB), made memray count
#: 446 MiB allocated for a 2,000-record shard of 2,504 samples, one line's worth 67-73 MiB.
MAX_LINE_BYTES = 16 << 20

_SQL_TYPES = {"Integer": "INTEGER", "Float": "DOUBLE", "String": "VARCHAR", "Character": "VARCHAR"}

_VARIANT_CLASS_SQL = r"""
CASE
  WHEN alt = '*' THEN 'overlap'
  WHEN alt IN ('<NON_REF>', '<*>', '<X>') THEN 'non_ref'
  WHEN alt = '.' THEN 'no_alt'
  WHEN alt LIKE '<%>' THEN 'symbolic'
  WHEN regexp_matches(alt, '[\[\]]') OR alt LIKE '.%' OR alt LIKE '%.' THEN 'breakend'
  WHEN length(ref) = 1 AND length(alt) = 1 THEN 'snv'
  WHEN length(ref) = length(alt) THEN 'mnp'
  WHEN length(ref) < length(alt) AND (starts_with(alt, ref) OR ends_with(alt, ref)) THEN 'insertion'
  WHEN length(ref) > length(alt) AND (starts_with(ref, alt) OR ends_with(ref, alt)) THEN 'deletion'
  ELSE 'indel'
END"""

_IMPACT_RANK_SQL = """CASE upper(impact) WHEN 'HIGH' THEN 1 WHEN 'MODERATE' THEN 2
  WHEN 'LOW' THEN 3 WHEN 'MODIFIER' THEN 4 ELSE 5 END"""


@dataclass(frozen=True)
class InfoColumn:
    """An INFO field and the typed column it becomes."""

    field: FieldDef

    @property
    def name(self) -> str:
        return info_column_name(self.field.id)

    @property
    def raw(self) -> str:
        return f"raw_{self.name}"

    @property
    def is_list(self) -> bool:
        numeric = self.field.type in ("Integer", "Float")
        return numeric and not self.field.single_value_after_split

    def read_type(self) -> str:
        """Type of the text column DuckDB reads from bcftools."""
        if self.field.type == "Flag" or self.is_list:
            return "VARCHAR"
        return _SQL_TYPES.get(self.field.type, "VARCHAR")

    def select_sql(self) -> str:
        raw = _quote(self.raw)
        if self.field.type == "Flag":
            return f"({raw} IS NOT NULL) AS {_quote(self.name)}"
        if self.is_list:
            element = _SQL_TYPES[self.field.type]
            return (
                f"list_transform(string_split({raw}, ','), lambda e: CAST(NULLIF(e, '{MISSING}') AS {element}))"
                f" AS {_quote(self.name)}"
            )
        return f"{raw} AS {_quote(self.name)}"


@dataclass
class ShardStats:
    source: str
    shard: str
    variants: int
    genotypes: int
    annotations: int

    def to_dict(self) -> dict:
        return asdict(self)


#: bcftools query cannot address tags named otherwise (htslib itself calls them invalid).
_QUERYABLE = re.compile(r"^[A-Za-z0-9_.]+$")


def select_info_columns(header: VcfHeader, wanted: list[str] | None) -> list[InfoColumn]:
    """The INFO fields that become columns: all declared ones, or the configured subset."""
    declared = {k: v for k, v in header.info.items() if k not in INTERNAL_TAGS and _QUERYABLE.match(k)}
    unusable = [k for k in header.info if not _QUERYABLE.match(k)]
    if unusable:
        log.warning("INFO fields with names bcftools cannot query are left out: %s", ", ".join(unusable))
    chosen = [declared[name] for name in (wanted if wanted is not None else declared) if name in declared]
    columns = [InfoColumn(f) for f in chosen]
    _check_unique_names(columns)
    return columns


def _check_unique_names(columns: list[InfoColumn]) -> None:
    seen: dict[str, str] = {}
    for column in columns:
        key = column.name.lower()
        if key in seen:
            raise fail(
                "INFO fields",
                f"{seen[key]!r} and {column.field.id!r} map to the same column {column.name!r};"
                " leave one out with the config key info_fields",
            )
        seen[key] = column.field.id


def convert_shard(
    bcf: Path | str,
    shard: Shard,
    *,
    source: str,
    variants_out: Path | str,
    genotypes_out: Path | str,
    annotations_out: Path | str,
    info_fields: list[str] | None = None,
    threads: int = 1,
    mem_mb: int = 1024,
    input_path: Path | str | None = None,
) -> ShardStats:
    """Write the three Parquet files of one shard (each via a temporary name).

    `input_path`: the user's VCF that `bcf` was normalised from, which errors name (default: `bcf`).
    `threads`: the job's cores; DuckDB takes one whatever the number (see the module's docstring).
    """
    if mem_mb < MIN_CONVERT_MEM_MB:
        why = f"DuckDB needs {MIN_DUCKDB_MB} MB for lines up to 16 MiB, beside {PROCESS_OVERHEAD_MB} MB for the process"
        raise TooLittleMemory(mem_mb, MIN_CONVERT_MEM_MB, why)
    bcf = Path(bcf)
    subject = Path(input_path) if input_path else bcf
    header = read_header(bcf)
    info = select_info_columns(header, info_fields)
    with (
        atomic_files(variants_out, genotypes_out, annotations_out) as tmps,
        tempfile.TemporaryDirectory(prefix="vcf-agent-shard-") as scratch,
    ):
        scratch = Path(scratch)
        regions_file = scratch / "regions.tsv"
        regions_file.write_text(shard.regions_line())
        regions = shard.region_options(regions_file)
        con = _connect(scratch, mem_mb)
        try:
            original = ORIGINAL_ALT_TAG in header.info
            _stage_variants(con, bcf, regions, info, scratch / "staged.parquet", original=original, subject=subject)
            annotation = header.annotation
            _write_annotations(con, annotation, info, source, tmps[2])
            variants = _write_variants(con, annotation, info, source, tmps[0])
            genotypes = _write_genotypes(con, bcf, regions, header, source, tmps[1], subject=subject)
            annotations = con.execute(f"SELECT count(*) FROM read_parquet('{tmps[2]}')").fetchone()[0]
        finally:
            con.close()
        _check_count(subject, shard, variants)  # a wrong count publishes none of the three
    return ShardStats(source, shard.shard, variants, genotypes, annotations)


def _connect(scratch: Path, mem_mb: int) -> duckdb.DuckDBPyConnection:
    return duckdb_connect(scratch, 1, duckdb_limit_mb(mem_mb), keep_order=True)


def duckdb_connect(
    scratch: Path, threads: int, memory_limit_mb: int, *, keep_order: bool = False
) -> duckdb.DuckDBPyConnection:
    """DuckDB bounded by `memory_limit_mb` (it spills beyond it into `scratch`), no extension downloads."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute(f"SET memory_limit = '{max(128, memory_limit_mb)}MB'")
    con.execute(f"SET threads = {max(1, threads)}")
    con.execute(f"SET temp_directory = '{scratch / 'spill'}'")
    con.execute(f"SET preserve_insertion_order = {str(keep_order).lower()}")
    con.execute("SET enable_progress_bar = false")  # it would write to stdout
    return con


def _check_count(bcf: Path, shard: Shard, variants: int) -> None:
    if variants != shard.records:
        raise fail(
            bcf,
            f"shard {shard.shard} ({shard.chrom}:{shard.start}-{shard.end}) gave {variants} variants,"
            f" the plan counted {shard.records}",
        )


def _stage_variants(
    con, bcf: Path, regions: list[str], info: list[InfoColumn], staged: Path, *, original: bool, subject: Path
) -> None:
    """The site columns of the shard, typed, in a scratch Parquet file.

    `original`: the BCF carries the alleles of split multiallelic records as written
    (normalize._original_alleles); they become columns original_ref and original_alt.
    """
    originals = {"original_ref": ORIGINAL_REF_TAG, "original_alt": ORIGINAL_ALT_TAG} if original else {}
    fields = ["%CHROM", "%POS", "%END", "%REF", "%ALT", "%ID", "%QUAL", "%FILTER", f"%INFO/{DUPLICATE_TAG}"]
    fields += [f"%INFO/{tag}" for tag in originals.values()] + [f"%INFO/{c.field.id}" for c in info]
    fmt = "\t".join(fields) + "\n"
    columns = {
        "chrom": "VARCHAR", "pos": "BIGINT", "end": "BIGINT", "ref": "VARCHAR", "alt": "VARCHAR",
        "id": "VARCHAR", "qual": "DOUBLE", "filter": "VARCHAR", "dup": "INTEGER",
    }  # fmt: skip
    columns.update(dict.fromkeys(originals, "VARCHAR"))
    columns.update({c.raw: c.read_type() for c in info})
    query = bcftools("query", *regions, "-f", fmt, bcf)
    sql = f"COPY (SELECT * FROM {_read_tsv_sql(columns, ['chrom', 'ref', 'alt'])}) TO '{staged}' (FORMAT parquet)"
    _copy_from_command(con, query, sql, subject=subject, bcf=bcf)
    absent = "" if original else ", NULL::VARCHAR AS original_ref, NULL::VARCHAR AS original_alt"
    con.execute(f"CREATE TEMP VIEW staged AS SELECT *{absent} FROM read_parquet('{staged}')")


def _copy_from_command(con, command: list[str], sql_with_pipe: str, *, subject, bcf: Path) -> None:
    """Run `command` and let DuckDB execute `sql_with_pipe`, which reads its stdout as {pipe}."""
    with pipeline([command], subject=subject) as pipe:
        try:
            con.execute(sql_with_pipe.replace("{pipe}", f"/dev/fd/{pipe.stdout.fileno()}"))
        except duckdb.ConversionException as error:
            raise fail(subject, _explain_conversion(str(error))) from error
        except duckdb.InvalidInputException as error:
            line = _BAD_LINE.search(str(error))
            if "Invalid unicode" not in str(error) or line is None:
                raise
            raise fail(subject, _not_utf8(bcf, line["chrom"], int(line["pos"]))) from error


def _not_utf8(bcf: Path, chrom: str, pos: int) -> str:
    """'record chrom:pos: ID and INFO/x hold bytes that are not UTF-8; ...', the fields read back from the BCF."""
    record = subprocess.run(bcftools("view", "-H", "-r", f"{chrom}:{pos}", bcf), capture_output=True, check=False)
    fields = []
    for line in record.stdout.splitlines():
        columns = line.split(b"\t")
        if len(columns) > 7 and columns[1] == str(pos).encode():
            fields += ["ID"] if not _is_utf8(columns[2]) else []
            items = [item for item in columns[7].split(b";") if not _is_utf8(item)]
            fields += [f"INFO/{item.split(b'=')[0].decode(errors='replace')}" for item in items]
    fields = list(dict.fromkeys(fields)) or ["a field"]
    named = " and ".join(fields) + (" holds" if len(fields) == 1 else " hold")
    workaround = " (or leave the INFO field out with the config key info_fields)" if "ID" not in fields else ""
    return (
        f"record {chrom}:{pos}: {named} bytes that are not UTF-8, which VCF text must be;"
        f" convert the file, e.g. with iconv -f latin1 -t utf-8{workaround}"
    )


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_BAD_VALUE = re.compile(r'converting column "(?:raw_)?(?P<column>[^"]+)"\. Could not convert string "(?P<value>[^"]*)"')
_BAD_LINE = re.compile(r"Original Line: (?P<chrom>[^\t]*)\t(?P<pos>\d+)")


def _explain_conversion(message: str) -> str:
    """DuckDB's CSV error as 'record chrom:pos: column value does not fit its declared type'."""
    value, line = _BAD_VALUE.search(message), _BAD_LINE.search(message)
    where = f"record {line['chrom']}:{line['pos']}: " if line else ""
    if value is None:
        return where + message.splitlines()[0]
    field = value["column"].removeprefix(INFO_PREFIX)
    return (
        f"{where}INFO/{field} value {value['value']!r} does not match its header definition"
        " (leave the field out with the config key info_fields)"
    )


def _read_tsv_sql(columns: dict[str, str], not_null: list[str]) -> str:
    spec = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items()) + "}"
    read = (
        "read_csv('{pipe}', delim='\t', header=false, quote='', escape='', auto_detect=false,"
        f" nullstr='{MISSING}', force_not_null={not_null!r}, columns={spec},"
        f" max_line_size={MAX_LINE_BYTES}, buffer_size={MAX_LINE_BYTES})"
    )
    if "alt" not in not_null:
        return read
    # force_not_null reads the ALT '.' of a reference-only record as '' (which the class and the
    # description would take for a deletion), and a REF '.' alike; no allele is ever empty, so
    # '' can only be that '.'.
    # REF in upper case: normalisation upper-cases every record's bases but cannot rewrite a
    # record without ALT (normalize._RecordWalker.upper_case_alleles).
    ref = f"CASE WHEN ref = '' THEN '{MISSING}' ELSE upper(ref) END AS ref"
    alleles = f"{ref}, CASE WHEN alt = '' THEN '{MISSING}' ELSE alt END AS alt"
    return f"(SELECT * REPLACE ({alleles}) FROM {read})"


def _variant_id_sql() -> str:
    return (
        "chrom || ':' || pos || ':' || ref || ':' || alt"
        f" || CASE WHEN dup IS NULL THEN '' ELSE '{DUPLICATE_SEPARATOR}' || dup END"
    )


def _write_variants(con, annotation, info: list[InfoColumn], source: str, out: Path) -> int:
    info_sql = "".join(f", {c.select_sql()}" for c in info)
    top = (
        "top.gene, top.consequence, top.impact"
        if annotation
        else ("NULL::VARCHAR AS gene, NULL::VARCHAR AS consequence, NULL::VARCHAR AS impact")
    )
    join = "LEFT JOIN top_annotation AS top USING (variant_id)" if annotation else ""
    con.execute(
        f"""COPY (
          SELECT variant_id, {_literal(source)} AS source, chrom, pos, "end", ref, alt, id, qual, filter,
                 {_VARIANT_CLASS_SQL} AS variant_class, {top}{info_sql}
          FROM (SELECT *, {_variant_id_sql()} AS variant_id FROM staged) AS s {join}
          ORDER BY pos, variant_id
        ) TO '{out}' (FORMAT parquet, COMPRESSION zstd)"""
    )
    return con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]


def _write_annotations(con, annotation: AnnotationLayout | None, info, source: str, out: Path) -> None:
    """One row per ANN/CSQ entry of this record's ALT that names a gene; plus the top entry per variant."""
    if annotation is None:
        _write_empty(con, ANNOTATION_COLUMNS, out)
        return
    raw = (
        _quote(next(c.raw for c in info if c.field.id == annotation.tag))
        if any(c.field.id == annotation.tag for c in info)
        else None
    )
    if raw is None:
        raise fail(annotation.tag, "the annotation field must stay among info_fields to extract genes")
    con.execute(_annotation_entries_sql(annotation, raw))
    con.execute(
        f"""COPY (
          SELECT variant_id, {_literal(source)} AS source, gene, gene_id, consequence, impact,
                 feature_id, hgvs_c, hgvs_p
          FROM matched_entries WHERE gene IS NOT NULL AND NOT intergenic
          ORDER BY variant_id, entry_order
        ) TO '{out}' (FORMAT parquet, COMPRESSION zstd)"""
    )
    con.execute(
        f"""CREATE TEMP TABLE top_annotation AS
          SELECT variant_id,
                 arg_min(CASE WHEN intergenic THEN NULL ELSE gene END, ({_IMPACT_RANK_SQL}, entry_order)) AS gene,
                 arg_min(consequence, ({_IMPACT_RANK_SQL}, entry_order)) AS consequence,
                 arg_min(impact, ({_IMPACT_RANK_SQL}, entry_order)) AS impact
          FROM matched_entries GROUP BY variant_id"""
    )


def _annotation_entries_sql(layout: AnnotationLayout, raw: str) -> str:
    def part(*names: str) -> str:
        index = layout.index(*names)
        return f"NULLIF(trim(parts[{index}]), '')" if index else "NULL::VARCHAR"

    def vep_allele(ref: str, alt: str) -> str:
        # VEP drops the first base that REF and ALT share
        return (
            f"CASE WHEN length({ref}) > 0 AND length({alt}) > 0 AND left({ref}, 1) = left({alt}, 1)"
            f" AND (length({ref}) > 1 OR length({alt}) > 1) THEN coalesce(NULLIF(substr({alt}, 2), ''), '-')"
            f" ELSE {alt} END"
        )

    # A split multiallelic record is matched through its ALT as written (original_alt):
    # its ALT after the split may be trimmed into another ALT of the same site.
    alleles = (
        f"CASE WHEN original_alt IS NULL THEN [alt, {vep_allele('ref', 'alt')}]"
        f" ELSE [original_alt, {vep_allele('original_ref', 'original_alt')}] END"
    )
    return f"""CREATE TEMP TABLE matched_entries AS
      WITH entries AS (
        SELECT variant_id, alleles, unnest(list) AS entry, unnest(range(1, len(list) + 1)) AS entry_order
        FROM (SELECT {_variant_id_sql()} AS variant_id, {alleles} AS alleles, string_split({raw}, ',') AS list
              FROM staged WHERE {raw} IS NOT NULL)
      ), fields AS (
        SELECT variant_id, alleles, entry_order, string_split(entry, '|') AS parts FROM entries
      ), typed AS (
        SELECT variant_id, entry_order, alleles,
               {part("Allele")} AS allele,
               {part("Annotation", "Consequence")} AS consequence,
               {part("Annotation_Impact", "IMPACT")} AS impact,
               {part("Gene_Name", "SYMBOL")} AS gene,
               {part("Gene_ID", "Gene")} AS gene_id,
               {part("Feature_Type")} AS feature_type,
               {part("Feature_ID", "Feature")} AS feature_id,
               {part("HGVS.c", "HGVSc")} AS hgvs_c,
               {part("HGVS.p", "HGVSp")} AS hgvs_p
        FROM fields
      ), flagged AS (
        SELECT *, (allele IS NULL OR list_contains(alleles, allele)) AS matches,
               bool_or(list_contains(alleles, allele)) OVER (PARTITION BY variant_id) AS any_match,
               min(allele) OVER (PARTITION BY variant_id) = max(allele) OVER (PARTITION BY variant_id) AS one_allele
        FROM typed
      )
      SELECT variant_id, entry_order, consequence, impact, gene, gene_id, feature_id, hgvs_c, hgvs_p,
             (coalesce(feature_type, '') = 'intergenic_region'
              OR coalesce(consequence, '') LIKE 'intergenic%') AS intergenic
      FROM flagged
      -- left-alignment can change an indel's ALT after annotation: a record whose entries all
      -- name one allele keeps them even when that allele no longer matches.
      WHERE matches OR (NOT any_match AND one_allele)"""


def _write_genotypes(
    con, bcf: Path, regions: list[str], header: VcfHeader, source: str, out: Path, *, subject: Path
) -> int:
    """Carriers only: samples whose genotype holds the ALT (after the split, allele index 1)."""
    if not header.samples or "GT" not in header.formats:
        _write_empty(con, GENOTYPE_COLUMNS, out)
        return 0
    depth = _integer_format(header, "DP")
    quality = _integer_format(header, "GQ")
    fmt = f"[%POS\t%REF\t%ALT\t%INFO/{DUPLICATE_TAG}\t%SAMPLE\t%GT\t{depth}\t{quality}\n]"
    # bcftools 1.16 does not count half-missing calls (./1) as "alt" (and GT~"1" can trip an
    # assertion in it), so every call but a reference one comes along and DuckDB keeps those
    # holding allele 1. 'GT!="ref"' keeps what 'GT="alt" | GT="mis"' keeps at the cost of one
    # test per sample (0.69 s against 1.17 s of CPU for a 10,000-record shard of 2,504 samples).
    query = bcftools("query", *regions, "-i", 'GT!="ref"', "-f", fmt, bcf)
    columns = {
        "pos": "BIGINT", "ref": "VARCHAR", "alt": "VARCHAR", "dup": "INTEGER",
        "sample": "VARCHAR", "gt": "VARCHAR", "dp": "INTEGER", "gq": "INTEGER",
    }  # fmt: skip
    # The shard's variant ids come from its site rows (one contig, one row per POS, REF, ALT and
    # duplicate ordinal): a join to them costs less than building the id again for every genotype
    # (1.2 s against 1.9 s for 10,000 records of 2,504 samples). DuckDB would hash the side it
    # expects to be small, which for a pipe is the genotypes: the join is kept as written (the
    # genotypes stream through, the ids are hashed), and one thread keeps bcftools' row order.
    # nullif(): a column DuckDB cannot prove non-null, as the built id was (the files keep their schema).
    con.execute(
        f"""CREATE TEMP TABLE shard_ids AS
          SELECT DISTINCT pos, ref, alt, coalesce(dup, 0) AS dup_key, {_variant_id_sql()} AS variant_id FROM staged"""
    )
    sql = f"""COPY (
      SELECT sample, nullif(ids.variant_id, '') AS variant_id, {_literal(source)} AS source, gt,
             contains(gt, '|') AS phased,
             (length(gt) - length(replace(gt, '1', '')))::TINYINT AS alt_count,
             (length(gt) - length(replace(replace(gt, '/', ''), '|', '')) + 1)::TINYINT AS ploidy,
             dp, gq
      FROM {_read_tsv_sql(columns, ["ref", "alt", "sample", "gt"])} AS g
      JOIN shard_ids AS ids ON g.pos = ids.pos AND g.ref = ids.ref AND g.alt = ids.alt
                               AND coalesce(g.dup, 0) = ids.dup_key
      WHERE contains(gt, '1')
    ) TO '{out}' (FORMAT parquet, COMPRESSION zstd)"""
    con.execute("SET disabled_optimizers = 'join_order,build_side_probe_side'")
    try:
        _copy_from_command(con, query, sql, subject=subject, bcf=bcf)
    finally:
        con.execute("RESET disabled_optimizers")
    return con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]


def _integer_format(header: VcfHeader, tag: str) -> str:
    """%TAG when the header declares it as one integer per sample, else a missing value."""
    definition = header.formats.get(tag)
    ok = definition is not None and definition.type == "Integer" and definition.number == "1"
    return f"%{tag}" if ok else MISSING


def _write_empty(con, columns, out: Path) -> None:
    names = ", ".join(f"NULL::{_duck_type(c.type)} AS {_quote(c.name)}" for c in columns)
    con.execute(f"COPY (SELECT {names} LIMIT 0) TO '{out}' (FORMAT parquet)")


def _duck_type(arrow_type) -> str:
    return {"string": "VARCHAR", "int8": "TINYINT", "int32": "INTEGER", "bool": "BOOLEAN"}[str(arrow_type)]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def write_stats(stats: ShardStats, path: Path | str) -> None:
    write_json(stats.to_dict(), path)
