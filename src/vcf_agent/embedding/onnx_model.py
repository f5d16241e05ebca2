"""The light embedding runtime: the model's own weights run by ONNX Runtime, no torch at run time.

The ONNX graph is made from the packaged sentence-transformers model by `export_model`, once, in a
process that may import torch (the workflow's rule export_onnx_model, `vcf-agent export-model`, or
the CLI/server on first use). It is the model's Transformer module only (``last_hidden_state``);
the rest of the model's pipeline (modules.json: Transformer -> Pooling -> Normalize) is done here
as sentence-transformers does it: the model's own tokenizer (tokenizer.json, truncated at
sentence_bert_config.json's max_seq_length, padded to the longest text of a batch), mean pooling
over the attention mask (sum / max(count, 1e-9)) and L2 normalisation (x / max(|x|, 1e-12)).

Layout of an export (one folder per model identity, `embed.model_id`, so a changed model gets a
new export)::

    <models_dir>/<model_id>/model.onnx        the graph, optimised by ONNX Runtime (portable level)
    <models_dir>/<model_id>/model.onnx.data   its weights (memory-mapped at load: quick, small RSS)
    <models_dir>/<model_id>/export.json       what made it, and its check against sentence-transformers

The folder is built under a hidden temporary name and renamed into place, so a reader sees a whole
export or none, and concurrent exporters (a file lock beside it) export once.

Importing this module imports neither torch nor sentence-transformers; only `export_model` does.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from vcf_agent.errors import fail
from vcf_agent.files import atomic_folder

MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
INFO_FILE = "export.json"
OPSET = 17
#: Cosine similarity every reference text must reach against sentence-transformers.
MIN_COSINE = 0.9999
#: Texts per forward pass (ORT on 2 CPU cores; larger batches pad more and gain nothing).
ENCODE_BATCH = 32
#: Bound on rows x tokens^2 of one forward pass: each layer's attention scores take 12 heads x 4 bytes
#: of it (32 texts of 128 tokens: 25 MB), so texts near max_seq_length go through in smaller passes.
ATTENTION_CELLS = 32 * 128 * 128
#: modules.json of the pipelines this module reproduces (Transformer, mean Pooling, Normalize).
PIPELINE = (
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
)
#: Texts of the export's own check: short, long (truncated at max_seq_length), odd characters.
CHECK_TEXTS = (
    "a",
    "SNV C>T at 22:16050075, rs587697622, intergenic, allele frequency 0.0002",
    "deletion of 12 bp at chr22:16,123,456 in XKR3 (frameshift_variant, HIGH impact); carried by 3 samples",
    "insertion ACGTACGTTT " * 80,
    "  leading and trailing spaces  ",
    "Ünïcödé and symbols: <DEL> [1/1] {AF=0.5} ; | \\ ~",
)


def default_models_dir() -> Path:
    """Where the CLI and the server keep exports: $VCF_AGENT_MODELS, else the user's cache folder."""
    configured = os.environ.get("VCF_AGENT_MODELS")
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "vcf-agent" / "models"


def export_folder(models_dir: Path | str, model_id: str) -> Path:
    return Path(models_dir) / model_id


def check_pipeline(model_path: Path) -> None:
    """The model must be Transformer -> mean Pooling -> Normalize with a tokenizer.json, else fail."""
    try:
        modules = [m["type"] for m in json.loads((model_path / "modules.json").read_text())]
        pooling = json.loads((model_path / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError, KeyError, TypeError):
        modules, pooling = [], {}
    modes = sorted(k for k, v in pooling.items() if k.startswith("pooling_mode_") and v is True)
    if (
        tuple(modules) != PIPELINE
        or modes != ["pooling_mode_mean_tokens"]
        or not (model_path / "tokenizer.json").is_file()
    ):
        raise fail(
            "embedding.runtime",
            f"{model_path} is not a Transformer -> mean Pooling -> Normalize model with a tokenizer.json;"
            " onnx cannot run it (use runtime sentence-transformers)",
        )


def is_exported(folder: Path) -> bool:
    return all((folder / name).is_file() for name in (MODEL_FILE, DATA_FILE, INFO_FILE))


# ---------------------------------------------------------------- export (imports torch)


def export_model(model_path: Path | str, folder: Path | str, *, model_id: str, threads: int | None = None) -> dict:
    """Export the model's Transformer to `folder` (atomically) and check it; returns export.json."""
    model_path, folder = Path(model_path), Path(folder)
    if threads:
        import torch

        torch.set_num_threads(threads)
    # built aside and renamed in; another exporter that finished first keeps theirs
    with atomic_folder(folder, sync=True) as tmp:
        with warnings.catch_warnings():  # the tracer's notes on shapes: the check below is what counts
            warnings.simplefilter("ignore")
            _export_graph(model_path, tmp / "raw.onnx")
        _optimise(tmp / "raw.onnx", tmp / MODEL_FILE)
        (tmp / "raw.onnx").unlink()
        info = _export_info(model_path, model_id, worst_cosine=_check_against_reference(model_path, tmp))
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return info


def ensure_exported(
    model_path: Path | str, models_dir: Path | str, *, model_id: str, announce: bool = True, threads: int | None = None
) -> Path:
    """The export folder of the model, exporting it first (once, under a file lock) if missing."""
    folder = export_folder(models_dir, model_id)
    if is_exported(folder):
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        lock = open(folder.with_name(f".{folder.name}.lock"), "w")  # noqa: SIM115 (held until the export ends)
    except OSError as error:
        raise fail(folder.parent, f"cannot create the ONNX model folder ({error.strerror})") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_exported(folder):
            for left in folder.parent.glob(f".{folder.name}.*.tmp"):  # an exporter killed midway (we hold the lock)
                shutil.rmtree(left, ignore_errors=True)
            if announce:
                print(f"vcf-agent: exporting {model_id} to ONNX once, into {folder} (~15 s)", file=sys.stderr)
            export_model(model_path, folder, model_id=model_id, threads=threads)
    return folder


def copy_export(source: Path, folder: Path) -> Path:
    """`folder` as a copy of the finished export `source` (hard links where the file system allows),
    built aside and renamed in, so that a shared export serves several workflows without a new one."""
    if is_exported(folder):
        return folder
    try:
        with atomic_folder(folder) as building:  # another job that copied it meanwhile keeps theirs
            shutil.copytree(source, building, copy_function=_link_or_copy, dirs_exist_ok=True)
    except OSError as error:
        raise fail(folder, f"cannot copy the ONNX export from {source} ({error.strerror})") from None
    return folder


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _export_graph(model_path: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()

    # Eager attention traces to plain MatMul/Softmax ops; the mask stays an input of the graph.
    model = AutoModel.from_pretrained(model_path, local_files_only=True, attn_implementation="eager").eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self, transformer) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.transformer(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    # Two texts, one padded: the traced graph is the general one (a real mask, any batch and length).
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
    inputs = (ids, (ids != 0).long(), torch.zeros_like(ids))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
    with torch.no_grad():
        torch.onnx.export(
            LastHiddenState(model), inputs, str(target), input_names=names, output_names=["last_hidden_state"],
            dynamic_axes=axes, opset_version=OPSET, dynamo=False,
        )  # fmt: skip


def _optimise(raw: Path, target: Path) -> None:
    """ONNX Runtime's portable graph optimisations (no hardware-specific layouts), weights apart."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", DATA_FILE)
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    ort.InferenceSession(str(raw), options, providers=["CPUExecutionProvider"])


def _check_against_reference(model_path: Path, folder: Path) -> float:
    """Worst cosine of the export's vectors against sentence-transformers' on CHECK_TEXTS."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
    expected = reference.encode(list(CHECK_TEXTS), normalize_embeddings=True, convert_to_numpy=True)
    got = OnnxEncoder(model_path, folder, threads=1).encode(list(CHECK_TEXTS))
    worst = float(np.min(np.sum(expected * got, axis=1)))
    if worst < MIN_COSINE:
        raise fail(folder, f"the ONNX export differs from sentence-transformers (cosine {worst:.6f} < {MIN_COSINE})")
    return worst


def _export_info(model_path: Path, model_id: str, *, worst_cosine: float) -> dict:
    import onnx
    import onnxruntime
    import torch

    return {
        "model_id": model_id,
        "source": str(model_path),
        "opset": OPSET,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "check_texts": len(CHECK_TEXTS),
        "worst_cosine_vs_sentence_transformers": round(worst_cosine, 8),
    }


# ---------------------------------------------------------------- inference (no torch)


class OnnxEncoder:
    """The model's vectors from ONNX Runtime; the `encode` subset that vcf_agent.embedding.embed uses."""

    device = "cpu"

    def __init__(self, model_path: Path | str, folder: Path | str, *, threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_path, folder = Path(model_path), Path(folder)
        self.max_seq_length = _max_seq_length(model_path)
        self.tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)
        self.tokenizer.no_padding()  # padded per batch below, to the longest text of the batch
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0
        self.dim = int(json.loads((model_path / "config.json").read_text())["hidden_size"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        # No arena and no memory pattern: buffers are freed after each run, so RSS stays near the
        # weights whatever the batch shapes were (the arena keeps the largest ever seen).
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
        # Idle threads sleep instead of spinning: the job's other thread (the Parquet writer) and
        # other jobs on the same cores get the CPU.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # ORT raises its own exception types
            raise fail(folder / MODEL_FILE, f"cannot be loaded by ONNX Runtime ({error}); delete the folder") from None
        self.input_names = {i.name for i in self.session.get_inputs()}

    def get_embedding_dimension(self) -> int:
        return self.dim

    def encode(self, texts: list[str], batch_size: int = ENCODE_BATCH, **_ignored) -> np.ndarray:
        """L2-normalised mean-pooled vectors, float32, one row per text, in the texts' order."""
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=True)
        # Longest first, as sentence-transformers does: batches of alike lengths pad little.
        order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        vectors = np.empty((len(encodings), self.dim), dtype=np.float32)
        start = 0
        while start < len(order):
            width = len(encodings[order[start]].ids)  # the longest left
            rows = order[start : start + max(1, min(batch_size, ATTENTION_CELLS // (width * width)))]
            vectors[rows] = self._forward([encodings[i] for i in rows])
            start += len(rows)
        return vectors

    def _forward(self, encodings) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[row, :n], mask[row, :n], types[row, :n] = encoding.ids, encoding.attention_mask, encoding.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        hidden = self.session.run(["last_hidden_state"], {k: v for k, v in feeds.items() if k in self.input_names})[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


@lru_cache(maxsize=8)
def _max_seq_length(model_path: Path) -> int:
    with contextlib.suppress(FileNotFoundError, KeyError, ValueError):
        return int(json.loads((model_path / "sentence_bert_config.json").read_text())["max_seq_length"])
    return int(json.loads((model_path / "tokenizer_config.json").read_text())["model_max_length"])
