"""Rule export_onnx_model: the embedding model as ONNX, once, for the light runtime (vcf_agent.embedding.onnx_model)."""

from vcf_agent.embedding.embed import export_onnx
from vcf_agent.files import write_json
from vcf_agent.logs import log, run_job


def main(smk):
    info = export_onnx(smk.params.model, smk.params.models_dir, threads=smk.threads, announce=False)
    write_json(info, smk.output.export)
    log.info("%s", info)


run_job(snakemake, main)
