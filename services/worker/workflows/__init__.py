"""The Workflows engine of the worker: block implementations, the executor and the pipeline processor."""
