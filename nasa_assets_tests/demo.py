"""`make demo` and `make dev-demo`: the project against its own NASA double, with no network.

`make demo` starts the double on 127.0.0.1, points the settings at it, and runs exactly what
`make run` runs; `make dev-demo` starts `dagster dev` (the UI and daemon) the same way. Only
NASA_API_BASE_URL and NASA_ALLOWED_HOSTS differ; no API key is sent and storage is always local.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from dotenv import load_dotenv

from nasa_assets_tests.nasa_double import NasaDouble

ROOT = Path(__file__).resolve().parent.parent


def point_at(double: NasaDouble, env: dict) -> dict:
    """The settings that make the project use the double instead of NASA."""
    env = dict(env, NASA_API_BASE_URL=double.base_url, NASA_ALLOWED_HOSTS=double.host)
    env.pop("NASA_API_KEY", None)  # the double needs none; keep a real key at home
    # Synthetic images never go to a real bucket a .env may name: the demo is local only.
    env["S3_BUCKET_NAME"] = ""
    return env


def run(pages: str, total_hits: int) -> int:
    with NasaDouble(total_hits=total_hits) as double:
        os.environ.pop("NASA_API_KEY", None)
        os.environ.update(point_at(double, dict(os.environ)))
        print(f"demo: NASA double on {double.base_url} with {total_hits} hits")
        from nasa_assets.__main__ import main as run_main

        return run_main(["run", "--pages", pages])


def dev(port: int, total_hits: int) -> int:
    # `dagster dev` lets a .env in its working directory override the environment, so it runs in
    # an empty folder, with .env read here first and the double's settings on top.
    load_dotenv(Path.cwd() / ".env", override=False)
    local_dir = Path(os.environ.get("NASA_ASSETS_LOCAL_DIR") or "data/moon_dataset").resolve()
    try:
        double = NasaDouble(total_hits=total_hits).start(port=port)
    except OSError as error:
        print(f"dev-demo: cannot serve the NASA double on 127.0.0.1:{port} ({error.strerror}); "
              "choose another port: make dev-demo DEMO_PORT=...", file=sys.stderr)
        return 2
    with double, tempfile.TemporaryDirectory(prefix="dev-demo-") as workdir:
        env = point_at(double, dict(os.environ, NASA_ASSETS_LOCAL_DIR=str(local_dir)))
        print(f"dev-demo: NASA double on {double.base_url} with {total_hits} hits; "
              f"datasets go to {local_dir}", flush=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", str(ROOT / "workspace.yaml")],
            cwd=workdir, env=env,
        )
        # Stopped on its own (kill <pid>), it stops dagster dev too rather than orphaning it.
        signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
        try:
            return proc.wait()
        except KeyboardInterrupt:  # Ctrl-C reached dagster dev too; let it shut down cleanly
            return proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nasa_assets_tests.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--pages", default="0001")
    parser.add_argument("--total-hits", type=int, default=1000)
    parser.add_argument("--dev", action="store_true", help="start dagster dev (UI + daemon) instead of a run")
    parser.add_argument("--port", type=int, default=8765, help="the double's port with --dev (0: any free one)")
    args = parser.parse_args(argv)
    if args.dev:
        return dev(args.port, args.total_hits)
    return run(args.pages, args.total_hits)


if __name__ == "__main__":
    sys.exit(main())
