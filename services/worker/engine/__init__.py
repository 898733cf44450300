"""The inference engine: video sources -> detector -> sinks, as plain threads with bounded queues."""
