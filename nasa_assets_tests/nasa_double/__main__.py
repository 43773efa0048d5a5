"""Run the double standalone: python -m nasa_assets_tests.nasa_double --port 0."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from nasa_assets_tests.nasa_double.double import NasaDouble


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nasa_assets_tests.nasa_double", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--total-hits", type=int, default=250)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--image-bytes", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    double = NasaDouble(
        total_hits=args.total_hits, image_bytes=args.image_bytes, delay=args.delay, seed=args.seed
    ).start(port=args.port)
    print(f"NASA double listening on {double.base_url}", flush=True)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        double.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
