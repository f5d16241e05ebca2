"""`vcf-agent ask`: a question in plain words planned into calls of the query operations.

planner.py plans offline; llm.py lets a local language model plan instead.
"""
