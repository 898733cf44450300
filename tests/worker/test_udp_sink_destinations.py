"""The worker checks a pipeline's udp_sink again (WORKER_UDP_SINK_ALLOWED_NETWORKS, loopback by default):
a refused host fails the pipeline before it starts, naming the field and the setting; a name is judged by
every address it resolves to."""

from pathlib import Path

import pytest
import redis

from services.core.networks import DestinationRefusedError, NetworkPolicy
from services.core.plan import PipelineSpec
from services.core.plan import UdpSink as Destination
from services.core.records import PipelineState
from services.worker.engine.sinks.udp import UdpSink
from tests.support.pipelines import pop_reply, read_record
from tests.worker.test_runner import StartRun, clip, settings, start_run  # noqa: F401  (shared fixtures)

MODEL = "yolov3-tiny/coco-416"


def test_a_udp_sink_outside_the_allowed_networks_fails_the_pipeline_before_it_starts(
        start_run: StartRun, redis_client: redis.Redis, clip: Path) -> None:  # noqa: F811
    spec = PipelineSpec(video_references=[str(clip)], model_id=MODEL, udp_sink=Destination(host="10.1.2.3", port=9999))

    run = start_run(spec)

    assert run.result(timeout=30) is PipelineState.FAILED
    response = pop_reply(redis_client, run.reply_to, timeout=1)
    assert response is not None and response["error_type"] == "invalid_payload", response
    assert response["error_message"] == (
        "field 'sink_configuration.host': address 10.1.2.3 is outside the networks allowed for sinks: "
        "127.0.0.0/8, ::1/128 (WORKER_UDP_SINK_ALLOWED_NETWORKS)")
    assert "sink_configuration.host" in read_record(redis_client, run.record.pipeline_id).last_error


def test_the_sink_refuses_before_opening_a_socket_unless_the_network_is_allowed() -> None:
    with pytest.raises(DestinationRefusedError, match=r"address 192\.168\.0\.3 is outside"):
        UdpSink("192.168.0.3", 9999, on_update=lambda update: None)
    allowed = UdpSink("192.168.0.3", 9999, on_update=lambda update: None,
                      allowed=NetworkPolicy.parse("192.168.0.0/16"))
    allowed.close()


def test_a_name_is_checked_by_the_addresses_it_resolves_to() -> None:
    UdpSink("localhost", 9999, on_update=lambda update: None).close()  # 127.0.0.1 (and ::1): loopback
    with pytest.raises(DestinationRefusedError, match="host 'localhost' resolves to"):
        UdpSink("localhost", 9999, on_update=lambda update: None, allowed=NetworkPolicy.parse("10.0.0.0/8"))
