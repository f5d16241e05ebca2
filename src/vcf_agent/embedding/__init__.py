"""Variant descriptions and their sentence embeddings.

The text (describe.py), the model runtimes (onnx_model.py, embed.py) and the vector cache (cache.py).
"""
