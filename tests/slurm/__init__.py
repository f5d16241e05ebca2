"""A local one-node SLURM cluster for tests (cluster.py)."""
