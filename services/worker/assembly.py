"""Assembles an ``InferencePipeline`` from a ``PipelineSpec``, and maps what can go wrong onto wire errors.

Imports the engine (OpenCV, onnxruntime): only the task process imports this module. Cheap checks
come first (video files, source options), the model load last, so a bad payload fails fast.
"""

import dataclasses
import functools
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from services.core.errors import (
    InternalError,
    InvalidPayloadError,
    NotFoundError,
    OperationError,
    StreamManagerError,
)
from services.core.networks import DestinationRefusedError
from services.core.plan import PipelineSpec
from services.core.redaction import redact_reference, redact_text
from services.core.settings_values import comma_list
from services.worker.cores import usable_cores
from services.worker.detection.detector import DetectionParams
from services.worker.detection.processor import DetectionProcessor
from services.worker.engine.capture import SourceKind, classify
from services.worker.engine.events import StatusUpdate
from services.worker.engine.pipeline import InferencePipeline, PipelineConfig, RoundObserver, RoundProcessor
from services.worker.engine.reconnect import BackoffPolicy
from services.worker.engine.sinks import ResultSink
from services.worker.engine.sinks.redis_stream import Fence, RedisStreamSink
from services.worker.engine.sinks.udp import UdpSink
from services.worker.engine.source import SourceConfig, VideoSource
from services.worker.engine.watchdog import Watchdog
from services.worker.inference.client import InferenceClient
from services.worker.models.errors import InferenceDeviceError, InvalidModelError, ModelNotFoundError
from services.worker.models.repository import ModelRepository
from services.worker.preview import PreviewPublisher
from services.worker.settings import WorkerSettings
from services.worker.workflows.background import BackgroundRunner
from services.worker.workflows.blocks.base import BlockEnvironment, EnvironmentSecrets, SinkSettings
from services.worker.workflows.models import ModelService
from services.worker.workflows.processor import WorkflowProcessor, model_tasks

if TYPE_CHECKING:
    from services.worker.webrtc import WebRTCSession

StatusHandler = Callable[[StatusUpdate], None]


def build_pipeline(
    spec: PipelineSpec,
    pipeline_id: str,
    client: redis.Redis,
    settings: WorkerSettings,
    on_update: StatusHandler,
    fence: Fence | None = None,
    resume_after: Mapping[int, int] | None = None,
    peer: "WebRTCSession | None" = None,
) -> InferencePipeline:
    """The pipeline the spec describes, not started. Raises a :class:`StreamManagerError`.

    ``fence``: the task's ownership, checked by the results sink on every write.
    ``resume_after``: source id -> frames already processed by a previous task (files skip them).
    ``peer``: a WebRTC pipeline's session: its video track is the source, and each round goes back to it.
    """
    try:
        _check_files(spec)
        service = InferenceClient.from_environment() if settings.inference_service else None
        config = dataclasses.replace(_pipeline_config(spec, settings, service is not None),
                                     resume_after=dict(resume_after or {}))
        watchdog = Watchdog(len(config.video_references))
        processor = _processor(spec, settings, watchdog, service)
        sinks = _sinks(spec, pipeline_id, client, settings, on_update, fence)
        observers = _observers(pipeline_id, client, settings, fence)
        source_factory: Callable[..., VideoSource] = VideoSource
        if peer is not None:
            source_factory = functools.partial(VideoSource, opener=peer.open_capture)
            observers.append(peer.observer)
        return InferencePipeline(config, processor, sinks, on_update=on_update, observers=observers,
                                 watchdog=watchdog, source_factory=source_factory)
    except Exception as exc:
        raise as_stream_manager_error(exc, spec.secrets()) from exc


def webrtc_session(spec: PipelineSpec, settings: WorkerSettings) -> "WebRTCSession":
    """The peer side of a WebRTC pipeline, from its spec and this worker's ICE settings (not negotiated yet).

    The request's TURN configuration wins over the worker's; with neither, only host candidates are
    gathered (never a public STUN server the operator did not choose).
    """
    from services.worker.webrtc import IceServer, WebRTCOptions, WebRTCSession  # aiortc: WebRTC tasks only

    assert spec.webrtc is not None
    peer = spec.webrtc
    servers: tuple[IceServer, ...] = ()
    if peer.ice_server is not None:
        credential = peer.ice_server.credential
        servers = (IceServer(tuple(peer.ice_server.urls), peer.ice_server.username,
                             credential.get_secret_value() if credential is not None else None),)
    elif settings.webrtc_turn_urls.strip():
        credential = settings.webrtc_turn_credential
        urls = tuple(comma_list(settings.webrtc_turn_urls))
        servers = (IceServer(urls, settings.webrtc_turn_username,
                             credential.get_secret_value() if credential is not None else None),)
    options = WebRTCOptions(
        stream_output=peer.stream_output,
        data_output=peer.data_output,
        realtime=peer.realtime,
        peer_timeout=peer.peer_timeout,
        ice_servers=servers,
        host_addresses=tuple(comma_list(settings.webrtc_host_addresses)),
        port_range=settings.webrtc_ports(),
        backlog=spec.decoding_buffer_size,
        declared_fps=peer.declared_fps,
        output_names=frozenset(output.name for output in spec.workflow.outputs) if spec.workflow is not None else None,
    )
    return WebRTCSession(options)


def as_stream_manager_error(exc: Exception, secrets: tuple[str, ...] = ()) -> StreamManagerError:
    """The one translation of the engine's and the model layer's errors into wire error types."""
    if isinstance(exc, StreamManagerError):
        return exc
    message = redact_text(f"{type(exc).__name__}: {exc}", secrets)
    if isinstance(exc, ModelNotFoundError):
        return NotFoundError(message, "The requested model was not found in the model repository.")
    if isinstance(exc, InferenceDeviceError):
        return OperationError(message, "The inference device is not available on this worker.")
    if isinstance(exc, InvalidModelError):
        return OperationError(message, "The model cannot be loaded.")
    if isinstance(exc, socket.gaierror):
        return InvalidPayloadError(message, "The UDP sink host cannot be resolved.")
    if isinstance(exc, ValueError):
        return InvalidPayloadError(message)
    return InternalError(message)


def _check_files(spec: PipelineSpec) -> None:
    for reference in spec.video_references:
        if classify(reference) is SourceKind.FILE and not Path(str(reference)).is_file():
            shown = redact_reference(reference)
            raise NotFoundError(f"video file {shown} does not exist", f"Video file {shown} was not found.")


def _pipeline_config(spec: PipelineSpec, settings: WorkerSettings, shared: bool) -> PipelineConfig:
    cores = usable_cores().usable
    source = SourceConfig(
        buffer_size=spec.decoding_buffer_size,
        filling=spec.source_buffer_filling_strategy,
        consumption=spec.source_buffer_consumption_strategy,
        processing_mode=spec.processing_mode,
        max_staleness=spec.max_staleness,
        max_fps=spec.max_fps,
        properties=dict(spec.video_source_properties or {}),
        backoff=BackoffPolicy(initial=settings.reconnect_initial_delay, cap=settings.reconnect_max_delay),
        decode_threads=settings.decode_threads,
    )
    return PipelineConfig(
        video_references=tuple(spec.video_references),
        source=source,
        batch_collection_timeout=spec.batch_collection_timeout,
        sink_queue_size=spec.predictions_queue_size,
        inference_workers=(settings.pipeline_in_flight(cores) if shared else settings.inference_sizing(cores)[0]),
    )


def _processor(spec: PipelineSpec, settings: WorkerSettings, watchdog: Watchdog,
               client: InferenceClient | None) -> RoundProcessor:
    """A workflow's processor (every model loaded now), or one detection model's.

    With ``client`` the models run in the worker's inference service (loaded there now, if not yet).
    """
    # spec.device chose the queue; the worker serving that queue knows its own hardware.
    _, threads = settings.inference_sizing(usable_cores().usable)
    models = ModelService(ModelRepository(settings.model_repository), settings.device, threads, client)
    if spec.workflow is None:
        assert spec.model_id is not None  # PipelineSpec holds one or the other
        params = DetectionParams(
            confidence=spec.confidence,
            iou_threshold=spec.iou_threshold,
            class_agnostic_nms=spec.class_agnostic_nms,
            max_candidates=spec.max_candidates,
            max_detections=spec.max_detections,
        )
        return DetectionProcessor(models.detector(spec.model_id), params)
    models.preload(model_tasks(spec.workflow))
    background = BackgroundRunner(max_pending=settings.workflow_max_pending_deliveries, secrets=spec.secrets())
    sinks = SinkSettings(file_root=settings.workflow_file_root, allowed_hosts=settings.sink_hosts(),
                         allowed_networks=settings.workflow_networks(), slack_api_url=settings.workflow_slack_api_url,
                         twilio_api_url=settings.workflow_twilio_api_url,
                         s3_endpoint_url=settings.workflow_s3_endpoint_url, s3_region=settings.workflow_s3_region,
                         openai_api_url=settings.workflow_openai_api_url,
                         anthropic_api_url=settings.workflow_anthropic_api_url,
                         gemini_api_url=settings.workflow_gemini_api_url,
                         openrouter_api_url=settings.workflow_openrouter_api_url,
                         xai_api_url=settings.workflow_xai_api_url,
                         google_vision_api_url=settings.workflow_google_vision_api_url,
                         llm_api_timeout=settings.workflow_llm_api_timeout)
    environment_secrets = EnvironmentSecrets(frozenset(settings.workflow_secrets), settings.workflow_secret_values())

    def environment(source_id: int) -> BlockEnvironment:
        return BlockEnvironment(source_id=source_id, models=models, background=background, sinks=sinks,
                                secrets=list(spec.secrets()), environment_secrets=environment_secrets)

    return WorkflowProcessor(spec.workflow, models, environment, background=background,
                             on_step_errors=lambda errors: watchdog.on_step_errors([e.step for e in errors]),
                             keep_pixels=spec.webrtc is not None)  # a WebRTC peer gets the images as video


def _sinks(spec: PipelineSpec, pipeline_id: str, client: redis.Redis, settings: WorkerSettings,
           on_update: StatusHandler, fence: Fence | None) -> list[ResultSink]:
    """The results stream, and the UDP sink when the spec has one and its host is an allowed destination
    (WORKER_UDP_SINK_ALLOWED_NETWORKS; a refusal is ``invalid_payload`` naming the field)."""
    udp: list[ResultSink] = []
    if spec.udp_sink is not None:
        try:
            udp.append(UdpSink(spec.udp_sink.host, spec.udp_sink.port, on_update, allowed=settings.udp_sink_networks()))
        except DestinationRefusedError as exc:
            raise InvalidPayloadError(
                f"field 'sink_configuration.host': {exc}",
                "The UDP sink's host (sink_configuration.host) is not an allowed destination.",
            ) from None
    return [RedisStreamSink(client, pipeline_id, maxlen=spec.results_buffer_size, fence=fence,
                            replay_window=settings.results_replay_window), *udp]


def _observers(pipeline_id: str, client: redis.Redis, settings: WorkerSettings,
               fence: Fence | None) -> list[RoundObserver]:
    """The dashboard's preview publisher: for a task (fenced by its ownership), unless disabled."""
    if fence is None or settings.preview_interval <= 0:
        return []
    return [PreviewPublisher(client, pipeline_id, fence.epoch, fence.owner, settings.preview_interval)]

