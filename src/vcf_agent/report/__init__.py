"""What a run did: the per-run summary, each job's declared against used resources, the report pages."""
