"""The code about the pipeline: stage wiring, the DAG, lineage records and traces."""
