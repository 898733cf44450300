"""Test helpers shared by several test packages: real live streams served from local processes."""
