"""Dashboard render time with 10,000 jobs against 10, in the same run (target ratio ≤ 1.3).

    .venv/bin/python bench/dashboard.py [--renders 50]

Uses a throw-away SQLite database (or DATABASE_URL if set), renders the dashboard page and its
live fragment through Django's test client, and prints the median time per render for a user
with 10 jobs and for one with 10,000 (each with two output files), and their ratio.
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


def median_render(user: User, url: str, renders: int) -> float:
    client = Client()
    client.force_login(user)
    for _ in range(3):  # warm up: templates, caches, the session
        assert client.get(url).status_code == 200
    times = []
    for _ in range(renders):
        started = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=50)
    args = parser.parse_args()
    setup_test_environment()
    call_command("migrate", verbosity=0)
    # The format catalogue as the API would list it, already cached as it is in a running ccweb.
    formats = [c.as_api(include_options=True) for c in available()]
    cache.set(f"conversions:catalogue:{api_config().api_url}", formats, 3600)
    small = make_user("few", 10)
    page = make_user("page", 25)
    large = make_user("many", 10_000)
    for name in ("conversions:dashboard", "conversions:dashboard_rows"):
        url = reverse(name)
        few = median_render(small, url, args.renders)
        full = median_render(page, url, args.renders)
        many = median_render(large, url, args.renders)
        ratio = many / few
        verdict = "meets" if ratio <= 1.3 else "misses"
        print(f"{url:<12} 10 jobs: {few * 1000:6.2f} ms   25 jobs (one full page): {full * 1000:6.2f} ms   "
              f"10,000 jobs: {many * 1000:6.2f} ms")
        print(f"{'':<12} 10,000 vs 10: ratio {ratio:.2f} ({verdict} the ≤ 1.3 target); "
              f"10,000 vs 25 (same rows shown): ratio {many / full:.2f}")


if __name__ == "__main__":
    main()
