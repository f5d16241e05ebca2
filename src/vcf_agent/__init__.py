"""vcf-agent: VCF call sets to a LanceDB vector table and a Kuzu graph, and the tools to query them."""

__version__ = "0.1.0"
