"""Every Redis key and channel name of the project, built here and nowhere else.

Each function documents who writes the key, who reads it, and how long it lives. All keys share
one prefix so a deployment can share a Redis with other applications.
"""

PREFIX = "vsim"


def pipelines_index() -> str:
    """SET of the ids of live pipelines (not yet ended or terminated).

    Written by the manager (SADD at init, SREM when a pipeline ends, fails or is terminated); read by
    list_pipelines and the manager's reaper. No TTL.
    """
    return f"{PREFIX}:pipelines"


def pipeline_record(pipeline_id: str) -> str:
    """HASH describing one pipeline (fields in ``services.core.records``).

    The manager writes the desired state, epoch, device and timestamps; the task that owns the
    current epoch writes the actual state, owner and last error. No TTL while live; once the
    pipeline is over the manager gives it ``Settings.finished_ttl`` so its last status stays readable.
    """
    return f"{PREFIX}:pipeline:{pipeline_id}"


def pipeline_spec(pipeline_id: str) -> str:
    """STRING: the compiled PipelineSpec JSON with its secrets (api_key), used to (re)dispatch.

    Written by the manager at init; read by the manager when it dispatches, and by the API's
    /metrics only inside Redis (a Lua script takes ``results_buffer_size`` out). Never returned to
    a client. Same lifetime as the record.
    """
    return f"{PREFIX}:pipeline:{pipeline_id}:spec"


def pipeline_report(pipeline_id: str) -> str:
    """STRING: the latest status report JSON of the pipeline, credentials already redacted.

    Written by the owning task on every heartbeat (and a last time when it ends); read by status
    when the task cannot answer (ended, or between owners), and by the API's /metrics (its
    ``metrics`` section, ``services.core.metrics``). Same lifetime as the record.
    """
    return f"{PREFIX}:pipeline:{pipeline_id}:report"


def pipeline_heartbeat(pipeline_id: str) -> str:
    """STRING (owner hostname and epoch) with a short TTL, refreshed by the owning task every second.

    Its absence tells the manager's reaper that no task runs the pipeline any more.
    """
    return f"{PREFIX}:pipeline:{pipeline_id}:heartbeat"


def pipeline_control_channel(pipeline_id: str) -> str:
    """Pub/sub CHANNEL for control commands to the pipeline's task.

    Published by the manager after it wrote the desired state; subscribed by the owning task.
    Fire-and-forget: the task reconciles with the record's desired state anyway.
    """
    return f"{PREFIX}:pipeline:{pipeline_id}:control"


def pipeline_consumed(pipeline_id: str) -> str:
    """HASH: CONSUME_RESULT's cursor on the results stream: ``last_id`` (last entry returned),
    ``position`` (entries the stream had received up to ``last_id``), ``consumed`` and ``dropped``
    (running totals), ``last_non_empty`` (unix time of the last non-empty consume, read by the task
    for ``consumption_timeout``). See ``services/manager/cursor.py``.

    Written by the manager's consume script. Same lifetime as the record.
    """
    return f"{PREFIX}:pipeline:{pipeline_id}:consumed"


def results_stream(pipeline_id: str) -> str:
    """Redis Stream of a pipeline's results (entry format in ``services.core.results``).

    Written by the owning task (``XADD ... MAXLEN ~ results_buffer_size``, one entry per inference
    round); read by CONSUME_RESULT (through its cursor, without deleting) and by any consumer group.
    Same lifetime as the record.
    """
    return f"{PREFIX}:pipeline:{pipeline_id}:results"


def results_dropped(pipeline_id: str) -> str:
    """Counter of result rounds the task could not hand to Redis (sink queue full or Redis down).

    Incremented by the owning task; read by status and CONSUME_RESULT. Same lifetime as the record.
    """
    return f"{PREFIX}:pipeline:{pipeline_id}:results:dropped"


def pipeline_preview(pipeline_id: str) -> str:
    """STRING: the pipeline's latest annotated frame (boxes and labels drawn), as JPEG bytes.

    Written by the owning task at most once per ``WORKER_PREVIEW_INTERVAL`` (a fenced SET with EX
    ``PREVIEW_TTL``, so a stopped pipeline's preview disappears by itself); read by the HTTP API's
    ``/inference_pipelines/{id}/preview.jpg`` and the dashboard. Not in ``pipeline_keys``: it
    expires on its own.
    """
    return f"{PREFIX}:pipeline:{pipeline_id}:preview"


PREVIEW_TTL = 10  # seconds


def pipeline_preview_watched(pipeline_id: str) -> str:
    """STRING: present while someone looks at the pipeline's preview (EX ``PREVIEW_WATCH_TTL``).

    Set by the HTTP API whenever it serves ``/inference_pipelines/{id}/preview.jpg`` or lists the
    pipeline on the dashboard (only for a pipeline that has a record); the owning task draws and
    publishes ``pipeline_preview`` only while it exists, so previews cost nothing unwatched. Expires on
    its own.
    """
    return f"{PREFIX}:pipeline:{pipeline_id}:preview:watched"


PREVIEW_WATCH_TTL = 10  # seconds a look at a preview keeps its pipeline publishing


def reply_list(request_id: str) -> str:
    """LIST where a task pushes its reply to one control request (or to its dispatch, for init).

    Pushed by the task (RPUSH + EXPIRE ``REPLY_TTL``); popped by the manager (BLPOP with the
    command's timeout). Expires by itself if the manager gave up waiting.
    """
    return f"{PREFIX}:reply:{request_id}"


REPLY_TTL = 60  # seconds


def worker_registration(hostname: str) -> str:
    """STRING (JSON: hostname, queues, slots, free slots, RAM) with a short TTL.

    Refreshed every second by each worker process, always together with its member in
    :func:`workers_registry` (``services.infra.registry``); read by the manager to know which device
    queues have a live worker before it dispatches, by the API's /metrics, and by the worker's
    container healthcheck (its own key only).
    """
    return f"{PREFIX}:worker:{hostname}"


def workers_registry() -> str:
    """SORTED SET of worker hostnames, each scored by the time (Redis's clock) its registration key expires.

    Written by each worker's registration beat in the same script as :func:`worker_registration`
    (ZADD) and by its clean stop (ZREM); members whose score has passed are pruned by the readers
    (the manager's admission, the API's /metrics), which thereby find the live workers without a
    SCAN of the keyspace. No TTL (an empty sorted set does not exist).
    """
    return f"{PREFIX}:workers"


def reaper_lease() -> str:
    """STRING: the token of the one manager whose reaper may act (``services.manager.lease``).

    Set by a manager with ``SET NX PX`` (a random token naming its host and pid), renewed by that
    manager each sweep with a compare-and-set script and deleted by it when it stops (compare and
    delete); read by the other managers, which only try to take it. TTL ``MANAGER_REAPER_LEASE_TTL``.
    """
    return f"{PREFIX}:manager:reaper-lease"


def worker_drains() -> str:
    """HASH of the workers being drained: field the worker's hostname, value its drain progress (JSON,
    ``services.core.drain.DrainProgress``).

    A field is added by the manager's ``drain_worker`` (HSETNX) and removed by ``undrain_worker``
    (HDEL); the manager's reaper rewrites its value each sweep, only while the field exists (a Lua
    script). Read by each worker's registration beat (HEXISTS of its own hostname, in the same script
    that publishes its registration: it stops consuming its queues while drained), by admission
    (HKEYS: a draining worker takes no new pipeline) and by ``list_workers``. No TTL: a drain lasts
    until undrained, across restarts of the worker and of the managers.
    """
    return f"{PREFIX}:workers:drains"


def workflow(workspace_name: str, workflow_id: str) -> str:
    """HASH of one named workflow: ``specification`` (the definition's JSON text as it was put) and
    ``updated_at`` (ISO 8601, UTC).

    Written by the manager's put_workflow (both fields at once, replacing the previous ones) and
    deleted by delete_workflow, each in one transaction with :func:`workflows_index`; read by
    get_workflow and by INIT naming ``workspace_name`` + ``workflow_id``. No TTL: kept until deleted.
    Names are checked by the manager first (letters, digits, ``_ . -``; never ``/``).
    """
    return f"{PREFIX}:workflow:{workflow_name(workspace_name, workflow_id)}"


def workflows_index() -> str:
    """HASH of every stored named workflow: field :func:`workflow_name`, value its ``updated_at``.

    Written by the manager with :func:`workflow` (put_workflow HSET, delete_workflow HDEL, same
    transaction); read by list_workflows, so a listing never loads the definitions. No TTL.
    """
    return f"{PREFIX}:workflows"


def workflow_name(workspace_name: str, workflow_id: str) -> str:
    """``<workspace>/<workflow_id>``: a field of :func:`workflows_index` (names never hold ``/``)."""
    return f"{workspace_name}/{workflow_id}"


def split_workflow_name(name: str) -> tuple[str, str]:
    """The workspace and workflow id of a :func:`workflow_name`."""
    workspace_name, _, workflow_id = name.partition("/")
    return workspace_name, workflow_id


def pipeline_keys(pipeline_id: str) -> tuple[str, ...]:
    """Every key that belongs to one pipeline, for removal."""
    return (
        pipeline_record(pipeline_id),
        pipeline_spec(pipeline_id),
        pipeline_report(pipeline_id),
        pipeline_heartbeat(pipeline_id),
        pipeline_consumed(pipeline_id),
        results_stream(pipeline_id),
        results_dropped(pipeline_id),
    )
