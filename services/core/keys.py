"""Every Redis key and channel name of the project, built here and nowhere else.

Each function documents who writes the key, who reads it, and how long it lives.
"""

PREFIX = "vsim"


def results_stream(pipeline_id: str) -> str:
    """Redis Stream of a pipeline's results.

    Written by the pipeline's task (``XADD ... MAXLEN ~ results_buffer_size``, one entry per
    inference round); read by CONSUME_RESULT and by any consumer group. Lives until the pipeline
    record is removed.
    """
    return f"{PREFIX}:pipeline:{pipeline_id}:results"


def results_dropped(pipeline_id: str) -> str:
    """Counter of result entries the pipeline could not hand to Redis (sink queue full or Redis down).

    Incremented by the pipeline's task; read by status and CONSUME_RESULT. Same lifetime as the stream.
    """
    return f"{PREFIX}:pipeline:{pipeline_id}:results:dropped"
