"""The load test of `make loadtest` (scripts/loadtest.sh runs it with locust, headless).

Each simulated person registers an account of their own, logs in, then repeatedly uploads a small
video, follows its conversion on /events until `completed`, and downloads the MP3; now and then
one logs in again, lists their jobs, or a new person registers. Everything goes through the
gateway's public API, as a browser or the CLI would.

At the end it prints the sustained uploads and conversions per minute, latency percentiles per
endpoint, and every error; the exit code is 1 when anything failed (an error, an unexpected
status, a conversion that did not complete).

Read from the environment (scripts/loadtest.sh sets them):
  LOADTEST_VIDEOS   colon-separated MP4 files to upload (made with the ffmpeg CLI)
  LOADTEST_REPORT   where to write the summary as JSON as well (optional)
"""

import json
import os
import random
import resource
import time
import uuid

from locust import HttpUser, between, events, task

VIDEOS = []
for _path in filter(None, os.environ.get("LOADTEST_VIDEOS", "").split(":")):
    with open(_path, "rb") as _f:
        VIDEOS.append((os.path.basename(_path), _f.read()))

# The longest a conversion of a few seconds of video may take under load before it counts as
# failed (the gateway ends an /events stream itself after EVENT_STREAM_MAX_SECS).
CONVERSION_TIMEOUT = float(os.environ.get("LOADTEST_CONVERSION_TIMEOUT", "300"))

COUNTS = {"uploads": 0, "conversions": 0, "media_seconds": 0.0}
STARTED = {"at": None}


def new_credentials():
    return f"load-{uuid.uuid4().hex}@example.com", f"pw-{uuid.uuid4().hex}"


class Person(HttpUser):
    """One person using the service: an account, then uploads followed to the download."""

    wait_time = between(1, 3)

    def on_start(self):
        self.email, self.password = new_credentials()
        self.token = None
        if self.register(self.email, self.password):
            self.login()

    def register(self, email, password):
        with self.client.post(
            "/register", auth=(email, password), name="/register", catch_response=True
        ) as res:
            if res.status_code in (200, 201):
                res.success()
                return True
            res.failure(f"/register answered {res.status_code}: {res.text[:200]}")
            return False

    def login(self):
        with self.client.post(
            "/login", auth=(self.email, self.password), name="/login", catch_response=True
        ) as res:
            if res.status_code == 200 and res.text.count(".") == 2:
                self.token = res.text.strip()
                res.success()
            else:
                res.failure(f"/login answered {res.status_code}: {res.text[:200]}")

    def headers(self):
        return {"Authorization": f"Bearer {self.token}"}

    @task(6)
    def upload_follow_download(self):
        if not self.token or not VIDEOS:
            return
        name, data = random.choice(VIDEOS)
        started = time.monotonic()
        with self.client.post(
            "/upload",
            files={"file": (name, data, "video/mp4")},
            headers=self.headers(),
            name="/upload",
            catch_response=True,
        ) as res:
            body = _json(res)
            if res.status_code != 200 or body.get("status") != "success":
                res.failure(f"/upload answered {res.status_code}: {res.text[:200]}")
                return
            res.success()
        COUNTS["uploads"] += 1
        video_fid = body["video_fid"]

        final = self.follow(video_fid)
        if final is None:
            return
        total_ms = (time.monotonic() - started) * 1000
        if final.get("status") != "completed":
            events.request.fire(
                request_type="JOB",
                name="upload -> completed",
                response_time=total_ms,
                response_length=0,
                exception=Exception(f"job {video_fid} ended {final}"),
                context={},
            )
            return
        events.request.fire(
            request_type="JOB",
            name="upload -> completed",
            response_time=total_ms,
            response_length=0,
            exception=None,
            context={},
        )
        COUNTS["conversions"] += 1

        with self.client.get(
            "/download",
            params={"fid": final.get("mp3_fid", "")},
            headers=self.headers(),
            name="/download",
            catch_response=True,
        ) as res:
            if (
                res.status_code == 200
                and res.headers.get("content-type", "").startswith("audio/mpeg")
                and len(res.content) > 0
            ):
                res.success()
            else:
                res.failure(f"/download answered {res.status_code}, {len(res.content)} bytes")

    def follow(self, video_fid):
        """Reads /events until the job is final; the last status, or None after a failure."""
        last = None
        deadline = time.monotonic() + CONVERSION_TIMEOUT
        with self.client.get(
            "/events",
            params={"fid": video_fid},
            headers=self.headers(),
            name="/events (until the first byte)",
            stream=True,
            catch_response=True,
            timeout=CONVERSION_TIMEOUT,
        ) as res:
            if res.status_code != 200:
                res.failure(f"/events answered {res.status_code}: {res.text[:200]}")
                return None
            res.success()
            event = "message"
            for raw in res.iter_lines(decode_unicode=True):
                if raw.startswith("event:"):
                    event = raw[6:].strip()
                elif raw.startswith("data:") and event == "status":
                    last = json.loads(raw[5:].strip())
                    if last.get("status") != "processing":
                        break
                elif raw.startswith("data:") and event == "error":
                    last = {"status": "error", "error": raw[5:].strip()}
                    break
                elif raw == "":
                    event = "message"
                if time.monotonic() > deadline:
                    break
        # The gateway may end a long stream itself; the job's status decides.
        if last is None or last.get("status") == "processing":
            r = self.client.get(
                "/status", params={"fid": video_fid}, headers=self.headers(), name="/status"
            )
            last = _json(r) or {"status": f"HTTP {r.status_code}"}
        return last

    @task(2)
    def log_in_again(self):
        if self.token:
            self.login()

    @task(1)
    def list_jobs(self):
        if not self.token:
            return
        with self.client.get(
            "/jobs", headers=self.headers(), name="/jobs", catch_response=True
        ) as res:
            if res.status_code == 200 and "jobs" in _json(res):
                res.success()
            else:
                res.failure(f"/jobs answered {res.status_code}: {res.text[:200]}")

    @task(1)
    def someone_new_registers(self):
        email, password = new_credentials()
        self.register(email, password)


def _json(res):
    try:
        value = res.json()
        return value if isinstance(value, dict) else {}
    except ValueError:
        return {}


@events.test_start.add_listener
def _on_start(environment, **_kwargs):
    STARTED["at"] = time.monotonic()


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs):
    stats = environment.stats
    minutes = max((time.monotonic() - (STARTED["at"] or time.monotonic())) / 60, 1e-9)
    lines = ["", "=== load test summary ==="]
    people = getattr(environment.parsed_options, "num_users", None)
    lines.append(f"elapsed {minutes:.2f} min (the run time, then the last jobs finishing), {people} simulated people")
    lines.append(
        f"uploads      {COUNTS['uploads']:6d}  = {COUNTS['uploads'] / minutes:7.1f} per minute"
    )
    lines.append(
        f"conversions  {COUNTS['conversions']:6d}  = {COUNTS['conversions'] / minutes:7.1f} per minute"
        " (completed and downloaded)"
    )
    lines.append("")
    header = f"{'endpoint':38s} {'requests':>8s} {'fails':>6s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}"
    lines.append(header)
    report = {
        "minutes": minutes,
        "uploads": COUNTS["uploads"],
        "conversions": COUNTS["conversions"],
        "endpoints": {},
        "errors": [],
    }
    for (name, method), entry in sorted(stats.entries.items()):
        label = f"{method} {name}"
        lines.append(
            f"{label:38s} {entry.num_requests:8d} {entry.num_failures:6d}"
            f" {entry.get_response_time_percentile(0.5):8.0f}"
            f" {entry.get_response_time_percentile(0.95):8.0f}"
            f" {entry.get_response_time_percentile(0.99):8.0f}"
            f" {entry.max_response_time or 0:8.0f}"
        )
        report["endpoints"][label] = {
            "requests": entry.num_requests,
            "failures": entry.num_failures,
            "p50_ms": entry.get_response_time_percentile(0.5),
            "p95_ms": entry.get_response_time_percentile(0.95),
            "p99_ms": entry.get_response_time_percentile(0.99),
            "max_ms": entry.max_response_time,
        }
    total = stats.total
    lines.append("")
    lines.append(f"errors: {total.num_failures} of {total.num_requests} requests")
    for error in stats.errors.values():
        lines.append(f"  {error.occurrences} x {error.method} {error.name}: {error.error}")
        report["errors"].append(
            {"count": error.occurrences, "where": f"{error.method} {error.name}", "error": str(error.error)}
        )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = usage.ru_utime + usage.ru_stime
    lines.append(
        f"the load generator itself (locust, on the same machine) used {client_cpu:.1f} CPU seconds"
        f" = {client_cpu / (minutes * 60):.2f} cores"
    )
    report["client_cpu_seconds"] = client_cpu
    if COUNTS["uploads"] == 0:
        lines.append("no upload went through: the load test proves nothing")
    print("\n".join(lines), flush=True)
    path = os.environ.get("LOADTEST_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(report, f, indent=2)
    # Zero errors or it failed; a run that uploaded nothing failed too.
    if total.num_failures > 0 or COUNTS["uploads"] == 0 or stats.errors:
        environment.process_exit_code = 1
    else:
        environment.process_exit_code = 0
