"""Dashboard render time with 10,000 jobs against 25, the same rows on screen (target ratio ≤ 1.3).

    .venv/bin/python bench/dashboard.py [--renders 30] [--rounds 4]

Uses a throw-away SQLite database (or DATABASE_URL if set) and renders the dashboard page and its
live fragment through Django's test client, for a user with 25 jobs (one full page) and one with
10,000 (each job with two output files): both show the same 25 rows, so the ratio is the cost of
the 9,975 jobs not shown. Each is measured twice: cached (the rendered rows are kept while no job
changes, as every open dashboard polling the fragment sees them) and uncached (the rows rendered
at every request, as after any change). Rounds alternate which user goes first; the median over
all rounds counts. A user with 10 jobs is shown for reference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ccweb.settings")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="ccweb-bench-"))
# No API call may sit in the measurement: point at a closed port (credits are then cached as unknown).
os.environ.setdefault("ENGINE_URL", "http://127.0.0.1:9/engine")
# Measured as served in production: no debug bookkeeping.
os.environ.setdefault("DEBUG", "false")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.urls import reverse  # noqa: E402

from conversions import views  # noqa: E402
from conversions.cloudconvert.client import api_config  # noqa: E402
from conversions.models import ConversionJob, OutputFile  # noqa: E402
from engine.converters import available  # noqa: E402


def make_user(name: str, jobs: int) -> User:
    user = User.objects.create_user(name, f"{name}@example.com", "bench-password")
    batch = 1000
    for start in range(0, jobs, batch):
        created = ConversionJob.objects.bulk_create(
            ConversionJob(user=user, output_format="jpg", status="finished", input_filename=f"photo-{n}.png")
            for n in range(start, min(jobs, start + batch))
        )
        OutputFile.objects.bulk_create(
            OutputFile(job=job, filename=f"{job.input_filename}-{i}.jpg", size=1000, remote_url="http://127.0.0.1:9/x")
            for job in created
            for i in range(2)
        )
    return user


def renders(client: Client, url: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200
    return times


def measure(users: dict[str, User], url: str, count: int, rounds: int, *, cached: bool) -> dict[str, float]:
    """Median seconds per render for each user; the users' order alternates round by round."""
    keep = views.ROWS_CACHE_SECONDS
    views.ROWS_CACHE_SECONDS = keep if cached else 0  # 0: every rendered fragment expires at once
    try:
        clients = {}
        for name, user in users.items():
            clients[name] = Client()
            clients[name].force_login(user)
            renders(clients[name], url, 3)  # warm up: templates, caches, the session
        times: dict[str, list[float]] = {name: [] for name in users}
        names = list(users)
        for round_ in range(rounds):
            for name in names if round_ % 2 == 0 else names[::-1]:
                times[name] += renders(clients[name], url, count)
        return {name: statistics.median(values) for name, values in times.items()}
    finally:
        views.ROWS_CACHE_SECONDS = keep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=30, help="renders per user and round")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    setup_test_environment()
    call_command("migrate", verbosity=0)
    # The format catalogue as the API would list it, already cached as it is in a running ccweb.
    formats = [c.as_api(include_options=True) for c in available()]
    cache.set(f"conversions:catalogue:{api_config().api_url}", formats, 3600)
    cache.set(f"conversions:credits:{api_config().api_url}", None, 3600)  # the engine reports none
    users = {"10": make_user("few", 10), "25": make_user("page", 25), "10,000": make_user("many", 10_000)}
    print(f"median of {args.renders} renders × {args.rounds} rounds per user, order alternating")
    for name in ("conversions:dashboard", "conversions:dashboard_rows"):
        url = reverse(name)
        for cached in (True, False):
            result = measure(users, url, args.renders, args.rounds, cached=cached)
            ratio = result["10,000"] / result["25"]
            verdict = "meets" if ratio <= 1.3 else "misses"
            label = "cached" if cached else "uncached"
            print(f"{url:<12} {label:9s} 10 jobs {result['10'] * 1000:6.2f} ms   25 jobs {result['25'] * 1000:6.2f} ms"
                  f"   10,000 jobs {result['10,000'] * 1000:6.2f} ms   ratio 10,000/25: {ratio:.2f} ({verdict} ≤ 1.3)")


if __name__ == "__main__":
    main()
