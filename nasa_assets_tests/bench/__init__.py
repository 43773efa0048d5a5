"""`make bench` (`python -m nasa_assets_tests.bench`): every way of ingesting the same pages, side
by side in one run on this machine, against one NASA double and one moto S3 server (not a test).

Paths, each with wall time (start-up included), images/s and peak RSS of its whole process tree:
a sequential requests + boto3 loop; `python -m nasa_assets run`; `dagster asset materialize`; a
run launched into a live `dagster dev` with `dagster job launch` (launch to success); img2dataset
1.47 given the URL list the project resolved. Then the whole collection (100 pages) in one command
and its re-run (`--skip-whole` to leave it out). The issue's targets are printed beside the
figures; the result goes to stdout and bench-results/latest.md.
"""
