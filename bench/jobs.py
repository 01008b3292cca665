"""Small-job latency: PNG 800×600 → JPG through the served engine's HTTP API, against raw Pillow.

    .venv/bin/python bench/jobs.py [--jobs 30] [--burst 50] [--database-url postgres://...]

ccweb runs as bin/run runs it (`manage.py ccweb_serve`: gunicorn gthread and one task worker) on a
scratch data folder and database (SQLite there, or a scratch database beside the PostgreSQL one
given, dropped at the end). Each job is the
one ccweb creates for a picture, through the API over HTTP: import/upload, convert to jpg,
export/url, with ccweb's own webhook URL; ccweb knows the job (a ConversionJob row), so its real
webhook view receives, verifies and applies the job.finished delivery.

A job's latency runs from the upload's HTTP response to the moment ccweb's webhook view records the
delivery (WebhookDelivery.received_at, same clock). Its overhead is that minus what Pillow alone
takes for the same conversion (open, decode, EXIF-orient, JPEG quality 85), measured in this process
in the same rounds; the two alternate in order, one job then one Pillow run, then the other way
round. Jobs run one at a time (the next once ccweb stored the previous one's output), then a burst
of --burst jobs created and uploaded by 10 clients at once: jobs per second and latency p95. Also
printed: where a job's time went (p50 of each stage, from the engine's task timestamps) and the
worker's CPU time per job (its tasks, the webhook, and ccweb's copy of the output).
Target: overhead ≤ 100 ms p50 (goal ≤ 50 ms), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import served  # noqa: E402

TARGET_MS, GOAL_MS = 100.0, 50.0
BURST_CLIENTS = 10


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=30, help="jobs one at a time (default 30)")
    parser.add_argument("--burst", type=int, default=50, help="jobs in the burst (default 50)")
    parser.add_argument("--database-url", default="", help="default: SQLite in the scratch folder")
    return parser.parse_args()


def main() -> None:
    args = parse()
    data_dir, port = served.configure("jobs", database_url=args.database_url)

    import django

    django.setup()
    served.migrate()

    import requests
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection
    from PIL import Image, ImageOps

    from conversions.models import ConversionJob, OutputFile, WebhookDelivery
    from conversions.services import webhook_url
    from engine.models import Task

    picture = io.BytesIO()
    Image.effect_noise((800, 600), 64).convert("RGB").save(picture, "PNG")
    png = picture.getvalue()
    owner, _ = User.objects.get_or_create(username="bench")
    measured: list[str] = []
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {settings.ENGINE_API_KEY}"
    api = f"{settings.PUBLIC_URL}/engine/v2"
    tasks = {
        "upload": {"operation": "import/upload"},
        "convert": {"operation": "convert", "input": "upload", "output_format": "jpg"},
        "export": {"operation": "export/url", "input": "convert"},
    }

    def pillow() -> float:
        started = time.perf_counter()
        with Image.open(io.BytesIO(png), formats=["PNG"]) as img:
            img.load()
            oriented = ImageOps.exif_transpose(img)
        oriented.save(io.BytesIO(), "JPEG", quality=85)
        return time.perf_counter() - started

    def submit(client: requests.Session) -> tuple[str, float]:
        """Create a job the way ccweb does and upload the picture; the job id and when the upload ended."""
        job = client.post(f"{api}/jobs", json={"tasks": tasks, "webhook_url": webhook_url()}, timeout=60)
        job.raise_for_status()
        data = job.json()["data"]
        ConversionJob.objects.create(user=owner, output_format="jpg", remote_job_id=data["id"])
        form = next(t for t in data["tasks"] if t["name"] == "upload")["result"]["form"]
        sent = requests.post(form["url"], data=form["parameters"], files={"file": ("photo.png", png)}, timeout=60)
        sent.raise_for_status()
        return data["id"], time.time()

    def received(job_id: str, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            delivery = WebhookDelivery.objects.filter(remote_job_id=job_id).first()
            if delivery is not None:
                return delivery.received_at.timestamp()
            time.sleep(0.002)
        raise SystemExit(f"Job {job_id}: ccweb received no webhook within {timeout:.0f} s.")

    def settled(job_id: str) -> None:
        """ccweb stored the job's output (its follow-up task in the worker), so jobs do not overlap."""
        deadline = time.monotonic() + 30
        while OutputFile.objects.filter(job__remote_job_id=job_id, file="").exists() or not OutputFile.objects.filter(
            job__remote_job_id=job_id
        ).exists():
            if time.monotonic() > deadline:
                raise SystemExit(f"Job {job_id}: ccweb did not store its output within 30 s.")
            time.sleep(0.005)
        time.sleep(0.05)

    def one_job() -> float:
        job_id, done = submit(session)
        latency = received(job_id) - done
        settled(job_id)
        measured.append(job_id)
        return latency

    def stages(job_id: str) -> dict[str, float]:
        """Where a job's time went, from the engine's own timestamps and ccweb's receipt."""
        tasks = {task.name: task for task in Task.objects.filter(job_id=job_id)}
        upload, convert, export = tasks["upload"], tasks["convert"], tasks["export"]
        arrived = WebhookDelivery.objects.get(remote_job_id=job_id).received_at
        return {
            "upload stored → convert started (wake-up)": (convert.started_at - upload.ended_at).total_seconds(),
            "convert (claim to finish, Pillow included)": (convert.ended_at - convert.started_at).total_seconds(),
            "convert finished → export started": (export.started_at - convert.ended_at).total_seconds(),
            "export (claim to finish)": (export.ended_at - export.started_at).total_seconds(),
            "export finished → ccweb received the webhook": (arrived - export.ended_at).total_seconds(),
        }

    print(f"database: {served.describe_database()}; {served.load_note()}")
    with served.serving(served.ccweb_serve(port=port), port=port, log=data_dir / "server.log") as server:
        for _ in range(3):  # warm: imports, connections, Pillow's codecs
            one_job()
            pillow()
        measured.clear()
        worker = next(p for p in served.descendants(server.pid) if "ccweb_worker" in served.command_line(p))
        cpu_before = served.cpu_seconds(worker)
        latencies, pillows = [], []
        for n in range(args.jobs):
            if n % 2:
                pillows.append(pillow())
                latencies.append(one_job())
            else:
                latencies.append(one_job())
                pillows.append(pillow())
        cpu_per_job = (served.cpu_seconds(worker) - cpu_before) / args.jobs

        clients = [requests.Session() for _ in range(BURST_CLIENTS)]
        for client in clients:
            client.headers["Authorization"] = session.headers["Authorization"]
        burst_started = time.time()
        def submit_from_thread(n: int) -> tuple[str, float]:
            try:
                return submit(clients[n % BURST_CLIENTS])
            finally:
                connection.close()  # back to the pool (PostgreSQL): a thread here is no request

        with ThreadPoolExecutor(BURST_CLIENTS) as pool:
            submitted = list(pool.map(submit_from_thread, range(args.burst)))
        arrivals = [received(job_id, timeout=120) for job_id, _ in submitted]
        burst_latencies = [arrival - done for arrival, (_, done) in zip(arrivals, submitted, strict=True)]
        burst_seconds = max(arrivals) - burst_started

    p50, p95 = statistics.median(latencies), served.percentile(latencies, 0.95)
    pillow_p50 = statistics.median(pillows)
    overhead = (p50 - pillow_p50) * 1000
    print(f"one at a time, {args.jobs} jobs (upload done → ccweb's webhook received):")
    print(f"  job   p50 {p50 * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms")
    print(f"  Pillow p50 {pillow_p50 * 1000:6.1f} ms   (same conversion in this process)")
    print(f"  ratio job/Pillow (p50): {p50 / pillow_p50:.1f}x")
    print(f"  overhead p50: {overhead:.1f} ms   target ≤ {TARGET_MS:.0f} ms (goal ≤ {GOAL_MS:.0f} ms): "
          f"{'met' if overhead <= TARGET_MS else 'NOT met'}")
    breakdown = [stages(job_id) for job_id in measured]
    for stage in breakdown[0]:
        print(f"    {stage}: p50 {statistics.median(b[stage] for b in breakdown) * 1000:.1f} ms")
    print(f"  worker CPU per job (convert, export, webhook, ccweb's copy of the output): {cpu_per_job * 1000:.0f} ms")
    print(f"burst of {args.burst} jobs from {BURST_CLIENTS} clients: {args.burst / burst_seconds:.1f} jobs/s, "
          f"latency p50 {statistics.median(burst_latencies) * 1000:.0f} ms, "
          f"p95 {served.percentile(burst_latencies, 0.95) * 1000:.0f} ms")
    served.remove(data_dir)


if __name__ == "__main__":
    main()
