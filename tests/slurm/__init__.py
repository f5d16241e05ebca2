"""A local one-node SLURM cluster for tests (cluster.py) and the toy workflow that proves it (toy/)."""
