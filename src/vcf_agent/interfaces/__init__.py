"""How people and programs reach the query operations: the command line (cli.py) and the HTTP API (server.py)."""
