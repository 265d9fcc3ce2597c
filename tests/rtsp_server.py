"""A local RTSP server for the tests: GStreamer's RTSP server (Debian's gir1.2-gst-rtsp-server-1.0 with
gstreamer1.0-plugins-good) serving one MJPEG .avi file as RTP/JPEG (re-encoded by GStreamer's own jpegenc:
OpenCV's MJPEG frames sent as they are decode with errors on the other side).

It runs under the system python3 that has PyGObject (python3-gi), not the project's venv:

    /usr/bin/python3 tests/rtsp_server.py VIDEO.avi --port 8554 --path /cam

It prints "ready rtsp://127.0.0.1:PORT/PATH" once it listens, "client" for each client that connects, and
serves until killed. Every client gets the file from its start, at the file's own frame rate (the server
paces it as a camera would).
tests/rtsp.py starts, restarts and freezes it; `--check` only says whether everything it needs imports.
"""
import argparse
import sys


def _imports():
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer
    Gst.init(None)
    missing = [name for name in ("filesrc", "avidemux", "rtpjpegpay") if Gst.ElementFactory.find(name) is None]
    return GLib, GstRtspServer, missing


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", help="an MJPEG .avi file")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--path", default="/test")
    parser.add_argument("--check", action="store_true", help="exit 0 when the server can run here")
    args = parser.parse_args()
    try:
        GLib, GstRtspServer, missing = _imports()
    except (ImportError, ValueError) as e:
        print("missing: {} (install python3-gi, gir1.2-gst-rtsp-server-1.0)".format(e), file=sys.stderr)
        return 3
    if missing:
        print("missing GStreamer elements: {} (install gstreamer1.0-plugins-good)".format(", ".join(missing)),
              file=sys.stderr)
        return 3
    if args.check:
        return 0
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = args.video.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch('( filesrc location="{}" ! avidemux ! jpegdec ! jpegenc ! rtpjpegpay name=pay0 pt=26 )'.format(location))
    server.get_mount_points().add_factory(args.path, factory)
    server.connect("client-connected", lambda *_: print("client", flush=True))
    if server.attach(None) == 0:
        print("cannot listen on 127.0.0.1:{}".format(args.port), file=sys.stderr)
        return 4
    print("ready rtsp://127.0.0.1:{}{}".format(args.port, args.path), flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
