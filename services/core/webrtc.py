"""The WebRTC part of a pipeline spec: the peer's offer and what goes back to it.

A WEBRTC request is an INIT of the workflow generation plus the ``webrtc_*``, ``stream_output`` and
``data_output`` fields (README, "WebRTC pipelines"). Its video comes from the peer's track, so the payload's
``video_reference`` is ignored (the reference ignores it too): the spec's one source is
:data:`PEER_REFERENCE`, which only a worker holding the peer connection can open.

Compared with the reference, everything that can be checked before a worker is involved is checked
here and refused with ``invalid_payload`` naming the field: the offer's type and its video section,
``stream_output`` / ``data_output`` against the workflow's outputs, the TURN configuration, the
timeouts. The reference reads only the first name of each output list; so do we, and more than one
name is refused rather than silently ignored.
"""

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, ValidationError

from services.core.errors import InvalidPayloadError, invalid_payload_from

PEER_REFERENCE = "webrtc:peer"
PEER_SCHEME = "webrtc"
DEFAULT_PEER_TIMEOUT = 10.0  # seconds without a frame from the peer before the pipeline ends
MAX_SDP_BYTES = 64 * 1024  # a browser's offer is 3-10 KB

Url = Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class IceServerSpec(BaseModel):
    """One STUN/TURN server (the reference's ``webrtc_turn_config``): ``urls`` is one URL or several."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    urls: list[Url] = Field(min_length=1, max_length=16)
    username: str | None = Field(default=None, max_length=512)
    credential: SecretStr | None = None


class WebRTCSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    offer_sdp: str = Field(min_length=1, max_length=MAX_SDP_BYTES)
    offer_type: Literal["offer"] = "offer"
    ice_server: IceServerSpec | None = None  # None: the worker's own settings
    # None: send the input frame back; "": the first image output; a name: that output's image.
    stream_output: str | None = None
    data_output: str | None = None  # None: nothing on the data channel
    realtime: bool = True
    peer_timeout: float = Field(default=DEFAULT_PEER_TIMEOUT, gt=0, le=3600)
    declared_fps: float | None = Field(default=None, gt=0, le=1000)

    def secrets(self) -> tuple[str, ...]:
        credential = self.ice_server.credential if self.ice_server is not None else None
        return (credential.get_secret_value(),) if credential is not None and credential.get_secret_value() else ()

    def task_payload(self) -> dict[str, Any]:
        """JSON-ready dump WITH the TURN credential revealed: only for the Celery task and the spec key."""
        dumped = self.model_dump(mode="json")
        if self.ice_server is not None and self.ice_server.credential is not None:
            dumped["ice_server"]["credential"] = self.ice_server.credential.get_secret_value()
        return dumped

    def redacted(self) -> dict[str, Any]:
        """For status and logs: the credential replaced, the offer summarised (it holds the ICE password)."""
        dumped = self.model_dump(mode="json")
        dumped["offer_sdp"] = f"<{len(self.offer_sdp.encode())} bytes>"
        if self.ice_server is not None and self.ice_server.credential is not None:
            dumped["ice_server"]["credential"] = "***"
        return dumped


def compile_webrtc(payload: Mapping[str, Any], output_names: Sequence[str]) -> WebRTCSpec:
    """The WebRTC section of a WEBRTC payload; ``output_names``: the workflow's outputs."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    offer = payload.get("webrtc_offer")
    if not isinstance(offer, Mapping):
        raise InvalidPayloadError("field 'webrtc_offer' is required: an object {\"type\": \"offer\", \"sdp\": ...}")
    if offer.get("type") != "offer":
        raise InvalidPayloadError(f"field 'webrtc_offer.type' must be 'offer' (got {offer.get('type')!r})")
    values["offer_sdp"], origins["offer_sdp"] = offer.get("sdp"), "webrtc_offer.sdp"
    values["offer_type"], origins["offer_type"] = offer.get("type"), "webrtc_offer.type"
    turn = payload.get("webrtc_turn_config")
    if turn is not None:
        if not isinstance(turn, Mapping):
            raise InvalidPayloadError("field 'webrtc_turn_config' must be an object {urls, username, credential}")
        urls = turn.get("urls")
        values["ice_server"] = {**turn, "urls": [urls] if isinstance(urls, str) else urls}
        origins["ice_server"] = "webrtc_turn_config"
    for name, key in (("stream_output", "stream_output"), ("data_output", "data_output")):
        values[name] = _first_name(payload.get(key), key, output_names, allow_any_image=name == "stream_output")
        origins[name] = key
    for name, key in (("realtime", "webrtc_realtime_processing"), ("peer_timeout", "webrtc_peer_timeout"),
                      ("declared_fps", "webcam_fps")):
        if payload.get(key) is not None:
            values[name], origins[name] = payload[key], key
    _check_offer(values["offer_sdp"])
    try:
        return WebRTCSpec.model_validate(values)
    except ValidationError as exc:
        raise invalid_payload_from(exc, "webrtc payload", rename=origins) from exc


def _first_name(value: Any, key: str, names: Sequence[str], allow_any_image: bool) -> str | None:
    """``[]``/null: None; ``[name]`` (or a bare string): the name, which must be one of ``names``."""
    if value is None:
        return None
    listed = [value] if isinstance(value, str) else value
    if allow_any_image and isinstance(listed, list):  # older clients sent [null] for "any image output"
        listed = ["" if item is None else item for item in listed]
    if not isinstance(listed, list) or not all(isinstance(item, str) for item in listed):
        raise InvalidPayloadError(f"field '{key}' must be a list of output names")
    if not listed:
        return None
    if len(listed) > 1:
        raise InvalidPayloadError(f"field '{key}': one output name at most (got {len(listed)})")
    (name,) = listed
    if name == "" and allow_any_image:
        return str(name)
    if name not in names:
        known = ", ".join(repr(n) for n in names) or "none"
        raise InvalidPayloadError(f"field '{key}': the workflow has no output {name!r} (its outputs: {known})")
    return str(name)


def _check_offer(sdp: Any) -> None:
    """The checks that need no WebRTC stack: an SDP document with a video section."""
    if not isinstance(sdp, str) or not sdp.strip():
        raise InvalidPayloadError("field 'webrtc_offer.sdp' must be a non-empty SDP string")
    lines = sdp.replace("\r\n", "\n").split("\n")
    if not lines[0].startswith("v=0"):
        raise InvalidPayloadError("field 'webrtc_offer.sdp' is not an SDP document (it must start with 'v=0')")
    if not any(line.startswith("m=video ") for line in lines):
        raise InvalidPayloadError("field 'webrtc_offer.sdp': the offer has no video section (m=video): "
                                  "a WebRTC pipeline needs the peer's camera as a video track")


def advertise(sdp: str, address: str) -> str:
    """``sdp`` with the address of every host candidate replaced by ``address`` (1:1 NAT, e.g. a container
    whose UDP ports are published on the host's address): the peer then sends its checks there."""
    lines = []
    for line in sdp.split("\r\n"):
        parts = line.split(" ")
        if line.startswith("a=candidate:") and len(parts) >= 8 and parts[6] == "typ" and parts[7] == "host":
            parts[4] = address
            line = " ".join(parts)
        lines.append(line)
    return "\r\n".join(lines)
