"""The stream manager: the TCP endpoint, pipeline records in Redis, dispatch and supervision."""
