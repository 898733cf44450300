"""Renders a :class:`~services.api.scrape.ClusterSnapshot` as Prometheus metric families.

A custom collector over one snapshot, built per scrape: nothing is kept between scrapes, so a
pipeline that has ended simply disappears, and the counters are the tasks' own cumulative numbers
(reset to zero when a pipeline restarts in a new process; ``rate()`` handles that).

Labels are ``pipeline_id``, ``source_id`` (the index in the pipeline's list of sources), ``device``,
``reason``, ``sink``, ``state``, ``worker`` and ``queue``: never a video reference, which may hold a
camera's user and password. Pure: no I/O.
"""

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from services.api.scrape import ClusterSnapshot, PipelineSample
from services.core.metrics import HistogramCounts
from services.core.records import PipelineState

MIB = 2**20
SOURCE_LABELS = ["pipeline_id", "source_id", "device"]
PIPELINE_LABELS = ["pipeline_id", "device"]

# (metric name, help, SourceMetrics attribute)
HISTOGRAMS = (
    ("vsim_frame_decode_seconds",
     "Per frame: decoded -> inference started (buffer wait and pre-processing; the reference's "
     "frame_decoding_latency).", "decode"),
    ("vsim_inference_seconds", "Per frame: inference started -> post-processed (its round's model run and NMS).",
     "inference"),
    ("vsim_frame_age_seconds", "Per frame: decoded -> handed to the sinks (end-to-end age of its result).",
     "frame_age"),
)


class ClusterCollector(Collector):
    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot
        up = GaugeMetricFamily("vsim_metrics_redis_up",
                               "1 when this scrape could read Redis (API_REDIS_URL set and answering), else 0.")
        up.add_metric([], 1.0 if snapshot.redis_up else 0.0)
        yield up
        yield _pipelines_by_state(snapshot.pipelines)
        yield from _pipeline_families(snapshot)
        yield from _source_families(snapshot.pipelines)
        yield from _worker_families(snapshot)


def _pipelines_by_state(pipelines: list[PipelineSample]) -> Metric:
    family = GaugeMetricFamily("vsim_pipelines", "Live pipelines (not yet retired), by state.", labels=["state"])
    for state in PipelineState:
        family.add_metric([state.value], float(sum(1 for sample in pipelines if sample.state == state.value)))
    return family


def _pipeline_families(snapshot: ClusterSnapshot) -> Iterator[Metric]:
    fps = GaugeMetricFamily("vsim_pipeline_fps", "Frames per second over the pipeline's last inference rounds.",
                            labels=PIPELINE_LABELS)
    restarts = CounterMetricFamily("vsim_pipeline_restarts",
                                   "Times the manager re-dispatched the pipeline (crashes and worker shutdowns).",
                                   labels=PIPELINE_LABELS)
    age = GaugeMetricFamily("vsim_pipeline_report_age_seconds",
                            "Seconds since the task last stored its report (worker and API clocks compared).",
                            labels=PIPELINE_LABELS)
    fill = GaugeMetricFamily("vsim_results_buffer_fill_ratio",
                             "Results CONSUME_RESULT has not read yet / results_buffer_size; 1 = unread results "
                             "are being trimmed.", labels=PIPELINE_LABELS)
    errors = CounterMetricFamily("vsim_inference_errors", "Inference rounds that failed.", labels=PIPELINE_LABELS)
    step_errors = CounterMetricFamily("vsim_workflow_step_errors",
                                      "Frames on which a workflow step failed (the frame was still processed).",
                                      labels=[*PIPELINE_LABELS, "step"])
    dropped = CounterMetricFamily("vsim_results_dropped",
                                  "Result rounds a sink lost, by sink and reason (queue_full, sink_error, server_lost: "
                                  "acknowledged, then lost in a failover or a Redis restart without data).",
                                  labels=[*PIPELINE_LABELS, "sink", "reason"])
    replayed = CounterMetricFamily("vsim_results_replayed",
                                   "Result rounds the server had lost (a failover, a restart without data) that the "
                                   "sink wrote again with their original ids.", labels=[*PIPELINE_LABELS, "sink"])
    for sample in snapshot.pipelines:
        labels = [sample.pipeline_id, sample.device]
        restarts.add_metric(labels, float(sample.restarts))
        if sample.fps is not None:
            fps.add_metric(labels, sample.fps)
        if sample.reported_at is not None:
            age.add_metric(labels, max(0.0, snapshot.taken_at - sample.reported_at))
        if sample.unread_results is not None and sample.results_buffer_size:
            fill.add_metric(labels, min(1.0, sample.unread_results / sample.results_buffer_size))
        if sample.metrics is not None:
            errors.add_metric(labels, float(sample.metrics.inference_errors))
            for step, count in sorted(sample.metrics.workflow_step_errors.items()):
                step_errors.add_metric([*labels, step], float(count))
            for sink in sample.metrics.sinks:
                for reason, count in sorted(sink.dropped.items()):
                    dropped.add_metric([*labels, sink.name, reason], float(count))
                replayed.add_metric([*labels, sink.name], float(sink.replayed))
    yield from (fps, restarts, age, fill, errors, step_errors, dropped, replayed)


def _source_families(pipelines: list[PipelineSample]) -> Iterator[Metric]:
    histograms = {attribute: HistogramMetricFamily(name, text, labels=SOURCE_LABELS)
                  for name, text, attribute in HISTOGRAMS}
    decoded = CounterMetricFamily("vsim_frames_decoded", "Frames the source decoded (or grabbed).",
                                  labels=SOURCE_LABELS)
    processed = CounterMetricFamily("vsim_frames_processed", "Frames whose result was handed to the sinks.",
                                    labels=SOURCE_LABELS)
    dropped = CounterMetricFamily(
        "vsim_frames_dropped",
        "Frames not processed, by reason: buffer_full, adaptive, eager_skip (buffer strategies), max_fps, muted, "
        "decode_error, terminated, stale (older than the pipeline's max_staleness).", labels=[*SOURCE_LABELS, "reason"])
    reconnects = CounterMetricFamily("vsim_source_reconnects", "Reconnect attempts of a live source.",
                                     labels=SOURCE_LABELS)
    for sample in pipelines:
        if sample.metrics is None:
            continue
        bounds = sample.metrics.buckets
        for source in sample.metrics.sources:
            labels = [sample.pipeline_id, str(source.source_id), sample.device]
            for attribute, family in histograms.items():
                counts: HistogramCounts | None = getattr(source, attribute)
                if counts is not None:
                    family.add_metric(labels, counts.cumulative(bounds), counts.sum)
            decoded.add_metric(labels, float(source.frames_decoded))
            processed.add_metric(labels, float(source.frames_processed))
            reconnects.add_metric(labels, float(source.reconnects))
            for reason, count in sorted(source.frames_dropped.items()):
                dropped.add_metric([*labels, reason], float(count))
    yield from histograms.values()
    yield from (decoded, processed, dropped, reconnects)


def _worker_families(snapshot: ClusterSnapshot) -> Iterator[Metric]:
    slots = GaugeMetricFamily("vsim_worker_slots", "Pipelines a worker runs at once, per queue it serves.",
                              labels=["worker", "queue"])
    free = GaugeMetricFamily("vsim_worker_free_slots", "Slots of a worker not running a pipeline, per queue.",
                             labels=["worker", "queue"])
    ram_available = GaugeMetricFamily("vsim_worker_ram_available_bytes", "RAM available on the worker's host.",
                                      labels=["worker"])
    pipelines_ram = GaugeMetricFamily("vsim_worker_pipelines_ram_bytes",
                                      "PSS of the worker's pipeline processes together.", labels=["worker"])
    service_ram = GaugeMetricFamily("vsim_worker_inference_service_ram_bytes",
                                    "PSS of the worker's inference service (the models its pipelines share).",
                                    labels=["worker"])
    for worker in snapshot.workers:
        for queue in worker.queues:
            slots.add_metric([worker.hostname, queue], float(worker.slots))
            free.add_metric([worker.hostname, queue], float(worker.free_slots))
        if worker.ram_available_mb is not None:
            ram_available.add_metric([worker.hostname], float(worker.ram_available_mb * MIB))
        if worker.pipelines_ram_mb is not None:
            pipelines_ram.add_metric([worker.hostname], float(worker.pipelines_ram_mb * MIB))
        if worker.inference_service_ram_mb is not None:
            service_ram.add_metric([worker.hostname], float(worker.inference_service_ram_mb * MIB))
    yield from (slots, free, ram_available, pipelines_ram, service_ram)
