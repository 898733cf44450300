"""The WebRTC section of a spec: what the task gets, what status and logs show, and host-candidate advertising."""

from services.core.plan import PipelineSpec, compile_webrtc_init, load_task_spec
from services.core.webrtc import PEER_REFERENCE, advertise
from tools.payloads import newer_init

OFFER = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
         "a=ice-pwd:ICE-PASSWORD\r\n")


def spec(**fields: object) -> PipelineSpec:
    payload = {**newer_init("ignored.mp4"), "webrtc_offer": {"type": "offer", "sdp": OFFER},
               "webrtc_turn_config": {"urls": ["turn:a:3478", "turns:b:5349"], "username": "u",
                                      "credential": "TURN-SECRET"}, **fields}
    return compile_webrtc_init(payload)


def test_the_task_gets_the_credential_and_status_and_logs_do_not() -> None:
    compiled = spec(stream_output=[None], data_output="predictions")

    assert compiled.video_references == [PEER_REFERENCE] and not compiled.movable
    assert (compiled.webrtc.stream_output, compiled.webrtc.data_output) == ("", "predictions")  # [null]: any image
    task = compiled.task_payload()
    assert task["webrtc"]["ice_server"]["credential"] == "TURN-SECRET"
    assert load_task_spec(task) == compiled  # the worker reads back the same spec
    assert "TURN-SECRET" in compiled.secrets()
    for shown in (str(compiled.redacted()), repr(compiled), str(compiled)):
        assert "TURN-SECRET" not in shown and "ICE-PASSWORD" not in shown


def test_an_explicit_processing_mode_wins_over_realtime() -> None:
    payload = {"webrtc_realtime_processing": True}
    compiled = spec(**payload, video_configuration={"type": "VideoConfiguration", "video_reference": "x",
                                                    "processing_mode": "every_frame"})
    assert compiled.processing_mode is not None and compiled.processing_mode.value == "every_frame"


def test_advertise_rewrites_host_candidates_only() -> None:
    sdp = ("v=0\r\na=candidate:1 1 udp 2130706431 172.17.0.2 47001 typ host\r\n"
           "a=candidate:2 1 udp 1694498815 198.51.100.1 3478 typ srflx raddr 172.17.0.2 rport 47001\r\n"
           "a=end-of-candidates\r\n")

    rewritten = advertise(sdp, "192.0.2.7").split("\r\n")

    assert rewritten[1] == "a=candidate:1 1 udp 2130706431 192.0.2.7 47001 typ host"
    assert rewritten[2] == sdp.split("\r\n")[2]  # a server-reflexive candidate already is the public address
    assert rewritten[3] == "a=end-of-candidates"
