"""Building the two stores from the shards.

LanceDB (lance.py), Kuzu (kuzu.py, the only module that imports Kuzu), and what both share (build.py).
"""
