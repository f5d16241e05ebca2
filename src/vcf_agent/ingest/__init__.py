"""Input to Parquet: check a VCF, normalise it with bcftools, cut it into shards, convert each shard with DuckDB."""
