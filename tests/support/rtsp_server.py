"""A tiny RTSP camera for tests: GStreamer's RTSP server streaming live H.264.

Run with the SYSTEM Python (``/usr/bin/python3``, which has ``gi``), not the project venv:
``/usr/bin/python3 tests/support/rtsp_server.py PORT [VIDEO]``. Without VIDEO it streams a
moving test pattern (10 fps, 320x240); with VIDEO (an H.264 .mp4) it streams that file once per
client. It prints ``READY`` on stdout once it listens.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PATTERN = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=10/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! rtph264pay name=pay0 pt=96 )"
)
FILE = "( filesrc location={path} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 )"


def main() -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(sys.argv[1])
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(FILE.format(path=sys.argv[2]) if len(sys.argv) > 2 else PATTERN)
    factory.set_shared(True)
    server.get_mount_points().add_factory("/live", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on port {sys.argv[1]}")
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
