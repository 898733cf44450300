"""WebRTC pipelines, the worker's side: a browser or app streams its camera in and gets the processed video
and data back on the same peer connection.

Theory of operation
-------------------
::

    peer ──video──> aiortc (loop thread) ──FrameInbox──> PeerCapture ──> VideoSource ──> pipeline
    peer <─video─── OutgoingVideoTrack <──┐                                                 │
    peer <─data──── data channel <─────── OutputRelay <──── WebRTCObserver (post thread) <──┘

A :class:`WebRTCSession` answers the client's offer (``negotiate``) on its own event loop thread. Its
``open_capture`` is the pipeline source's opener for a ``webrtc:`` reference: the source reads the peer's
frames through a :class:`~.peer_capture.PeerCapture`, and ends (not reconnectable) when the peer goes away.
Its ``observer`` sees every round on the pipeline's post thread and hands it to the loop, which sends the
chosen image back on the outgoing video track and the chosen output on the client's data channel.
"""

from services.worker.webrtc.options import IceServer, WebRTCOptions
from services.worker.webrtc.session import WebRTCSession, check_offer

__all__ = ["IceServer", "WebRTCOptions", "WebRTCSession", "check_offer"]
