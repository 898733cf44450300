"""The reference's UDP sink: one JSON datagram per frame per source.

The datagram is the prediction dict plus ``inference_metadata`` {source_id, frame_id,
frame_decoding_time, emission_time}. The socket never blocks; a datagram larger than
``max_datagram`` bytes is not sent but counted and reported (status update + log), never silently lost.

The host is resolved once, when the sink is made, and every address it resolves to must lie in
``allowed`` (``services.core.networks``; the worker passes WORKER_UDP_SINK_ALLOWED_NETWORKS, loopback by
default), else :class:`~services.core.networks.DestinationRefusedError`; datagrams then go to the
checked address, never to a later answer of the name's DNS.
"""

import json
import logging
import socket
from collections.abc import Sequence
from datetime import UTC, datetime

from services.core.networks import NetworkPolicy
from services.infra.destinations import resolve_checked
from services.worker.engine import events
from services.worker.engine.events import StatusHandler, StatusUpdate
from services.worker.engine.results import RoundResult, SourceResult

log = logging.getLogger(__name__)

MAX_UDP_PAYLOAD = 65_507  # IPv4 limit: 65,535 - 8 (UDP header) - 20 (IP header)


class UdpSink:
    name = "udp"

    def __init__(self, host: str, port: int, on_update: StatusHandler, max_datagram: int = MAX_UDP_PAYLOAD,
                 allowed: NetworkPolicy | None = None):
        policy = NetworkPolicy.loopback() if allowed is None else allowed
        family, kind, proto, _, address = resolve_checked(host, port, policy, socket.SOCK_DGRAM)[0]
        self._address = address
        self._socket = socket.socket(family, kind, proto)
        self._socket.setblocking(False)
        self._on_update = on_update
        self._max_datagram = max_datagram
        self.sent = 0
        self.oversize = 0
        self.send_failures = 0

    def write(self, results: Sequence[RoundResult], dropped: int) -> None:
        for result in results:
            for slot in result.present():
                self._send(slot)

    def close(self) -> None:
        self._socket.close()

    def _send(self, slot: SourceResult) -> None:
        payload = dict(slot.prediction)
        payload["inference_metadata"] = {
            "source_id": slot.source_id,
            "frame_id": slot.frame_id,
            "frame_decoding_time": slot.frame_timestamp.isoformat(),
            "emission_time": datetime.now(UTC).isoformat(),
        }
        datagram = json.dumps(payload, separators=(",", ":")).encode()
        if len(datagram) > self._max_datagram:
            self._report_oversize(slot, len(datagram))
            return
        try:
            self._socket.sendto(datagram, self._address)
        except OSError as exc:  # buffer full (EAGAIN) or no route: count it, never block
            self.send_failures += 1
            if self.send_failures == 1:
                log.warning("udp sink could not send to %s: %s", self._address, exc)
            return
        self.sent += 1

    def _report_oversize(self, slot: SourceResult, size: int) -> None:
        self.oversize += 1
        log.warning(
            "udp sink: result of source %d frame %d is %d bytes, over the %d-byte datagram limit; not sent",
            slot.source_id, slot.frame_id, size, self._max_datagram,
        )
        self._on_update(StatusUpdate(
            event_type=events.INFERENCE_RESULTS_DISPATCHING_ERROR,
            context=events.CONTEXT_PIPELINE,
            severity=logging.WARNING,
            payload={"sink": self.name, "error_type": "DatagramTooLarge", "source_id": slot.source_id,
                     "frame_id": slot.frame_id, "size": size, "limit": self._max_datagram},
        ))
