"""What the entry points that query the stores (the CLI, the server) do first, to answer sooner.

`defer_rest_client()`: a lighter `import lancedb`. `load_model_meanwhile()`: the query model
loaded in a thread while the stores are imported and opened.

`import lancedb` (0.40) spent ~1.75 s of its ~2.7 s in `lance_namespace_urllib3_client`: the
`lance_namespace` package it imports re-exports that package's pydantic request and response
models, and the package's ``__init__`` first imports its whole generated REST client (nine API
modules of pydantic-validated functions, urllib3), which only a REST namespace connection uses.

`defer_rest_client()` registers the package without running its ``__init__``: its
subpackages (``.models``, the part LanceDB uses) import as usual from the package's folder, and
the first look-up of any other name of the package runs the real ``__init__`` in the same module
object, so code that does use the REST client gets exactly what it would have had, a moment
later. It changes nothing once the package is imported, and is called by the entry points only
(`vcf_agent.interfaces.cli.main`, the server's worker factory), never at a library's import.

pandas (~0.6 s) stays: pyarrow's pandas shim imports it at the first `pa.scalar` or `pa.array`
(`pyarrow.dataset` makes one at its own import), and hiding pandas from it would turn off
pyarrow's pandas support for the whole process.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import threading
from pathlib import Path

#: Packages whose ``__init__`` imports much that the query side never uses.
DEFERRED = ("lance_namespace_urllib3_client",)


def defer_rest_client(names: tuple[str, ...] = DEFERRED) -> None:
    for name in names:
        if name not in sys.modules:
            _defer_init(name)


def _defer_init(name: str) -> None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return
    module = importlib.util.module_from_spec(spec)

    def run_init(attribute: str):
        if attribute.startswith("__") and attribute != "__all__":
            raise AttributeError(attribute)  # probes such as __wrapped__ need not load anything
        if importlib.util.find_spec(f"{name}.{attribute}") is not None:
            return importlib.import_module(f"{name}.{attribute}")  # `from package import submodule`
        module.__dict__.pop("__getattr__", None)
        spec.loader.exec_module(module)
        return getattr(module, attribute)

    module.__getattr__ = run_init
    sys.modules[name] = module


def load_model_meanwhile(model: str | Path | None = None) -> threading.Thread:
    """A thread loading the query model as `Stores` will ask for it (embed.load_model caches it
    per process), so the load overlaps the imports of LanceDB and Kuzu; join it before the first
    query. A failure is left for the query to raise again, with its one-line message.

    The overlap is partial: importing is Python code that holds the GIL, while the model's
    files are hashed (embed.model_id) and ONNX Runtime builds its session outside of it."""

    def load() -> None:
        from vcf_agent.embedding.embed import load_model

        with contextlib.suppress(Exception):
            load_model(model, "cpu")

    thread = threading.Thread(target=load, name="model-loader", daemon=True)
    thread.start()
    return thread
