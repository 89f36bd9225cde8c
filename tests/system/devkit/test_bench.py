"""Smoke run of scripts/bench (devkit/bench): every scenario at tiny sizes. It checks that the
benchmark runs and cleans up, never how fast anything is (this machine's speed is not a test
result)."""

import json
import os
import re
import subprocess

import pytest
from conftest import ROOT
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.slow

BENCH = os.path.join(ROOT, "scripts", "bench")  # runs python -m devkit.bench
TIMEOUT = 900  # seconds; the quick run takes about a minute, several on a busy machine


def bench_databases(server_url):
    """Names of the bench's throwaway databases on the server."""
    url = make_url(server_url).set(drivername="postgresql+psycopg2")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return set(
                conn.scalars(
                    text("SELECT datname FROM pg_database WHERE datname LIKE 'mail\\_bench\\_%'")
                )
            )
    finally:
        engine.dispose()


def test_quick_bench_runs_every_scenario_and_prints_the_table(tmp_path, postgres_server):
    own_database = os.environ.get("TEST_DATABASE_URL")
    server = postgres_server.render_as_string(hide_password=False)
    where = ["--database-url", own_database] if own_database else ["--server-url", server]
    results = tmp_path / "bench.json"
    env = {key: value for key, value in os.environ.items() if key != "MAIL_SERVICE_CONFIG"}
    run = subprocess.run(
        [BENCH, "--quick", "--max-seconds", "800", "--json", str(results), *where],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert re.search(r"^scenario\s+ours\s+baseline\s+ratio\s+target\s+met\?", run.stdout, re.M)

    rows = json.loads(results.read_text())["results"]
    assert rows, "the table has no rows"
    assert not [row for row in rows if row["ours"] in ("error", "skipped")], rows
    # The random provider and API keys are never printed.
    assert not re.search(r"key-[0-9a-f]{32}|SG\.[A-Za-z0-9_-]{32}", output)
    # The throwaway database is gone.
    if not own_database:
        dropped = re.search(r"dropped database (mail_bench_[0-9a-f]+)", output)
        assert dropped, output[-2000:]
        assert dropped.group(1) not in bench_databases(server)
