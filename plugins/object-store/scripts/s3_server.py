#!/usr/bin/env python3
"""An S3-compatible server on loopback for the object-store plugin's tests and benchmarks.

It runs moto's S3 server (PyPI `moto[server]`) in this process, on 127.0.0.1 and the given
port (0: a free one), and prints one line once it accepts requests:

    VCON_S3_ENDPOINT=http://127.0.0.1:PORT

Modes:
    --until-stdin-closes   stop when standard input reaches end of file: a test that spawns
                           this with a pipe cannot leave it running, even if the test is killed
    (default)              run until SIGINT/SIGTERM, for `cargo xtask services`
    --bucket NAME          create bucket NAME before announcing (may be repeated)

Install the server with scripts/install-s3-server.sh. Moto keeps everything in memory, accepts
any credentials and listens on loopback only.
"""

import argparse
import logging
import signal
import sys
import threading
import urllib.request

# Moto routes a request to a service by its Authorization header and does not check the
# signature, so a bucket is created with a plain request that names S3.
S3_AUTHORIZATION = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=0"
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--until-stdin-closes", action="store_true")
    parser.add_argument("--bucket", action="append", default=[])
    args = parser.parse_args()
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        print(f"refusing to listen on {args.host}: loopback only", file=sys.stderr)
        return 2
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as err:
        print(
            f"moto's server is not installed ({err}): run "
            "plugins/object-store/scripts/install-s3-server.sh",
            file=sys.stderr,
        )
        return 3

    # One log line per request would drown a benchmark's output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for bucket in args.bucket:
        request = urllib.request.Request(
            f"{endpoint}/{bucket}", method="PUT", headers=S3_AUTHORIZATION
        )
        urllib.request.urlopen(request, timeout=10).read()
    print(f"VCON_S3_ENDPOINT={endpoint}", flush=True)

    stop = threading.Event()
    if args.until_stdin_closes:
        threading.Thread(
            target=lambda: (sys.stdin.read(), stop.set()), daemon=True
        ).start()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
