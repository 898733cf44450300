"""Adapters with I/O that several services share (the core stays pure): the worker registry in Redis, the
checked resolution of sink destinations. Like the core, they import no service (api, manager, worker)."""
