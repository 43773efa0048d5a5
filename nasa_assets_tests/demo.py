"""`make demo`: the main job against the project's own NASA double, so it runs with no network.

Starts the double on 127.0.0.1, points the settings at it, and runs exactly what `make run`
runs; only NASA_API_BASE_URL and NASA_ALLOWED_HOSTS differ.
"""

import argparse
import os
import sys

from nasa_assets_tests.nasa_double import NasaDouble


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nasa_assets_tests.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--pages", default="0001")
    parser.add_argument("--total-hits", type=int, default=1000)
    args = parser.parse_args(argv)
    with NasaDouble(total_hits=args.total_hits) as double:
        os.environ["NASA_API_BASE_URL"] = double.base_url
        os.environ["NASA_ALLOWED_HOSTS"] = double.host
        os.environ.pop("NASA_API_KEY", None)  # the double needs none; keep a real key at home
        # Synthetic images never go to a real bucket a .env may name: the demo is local only.
        os.environ["S3_BUCKET_NAME"] = ""
        print(f"demo: NASA double on {double.base_url} with {args.total_hits} hits")
        from nasa_assets.__main__ import main as run_main

        return run_main(["run", "--pages", args.pages])


if __name__ == "__main__":
    sys.exit(main())
