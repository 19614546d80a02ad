"""Catalog search under load: 200 sites built from ~1M real public imaging series (IDC).

Builds each site's cohort summary with the site node's own counting and suppression code from the
series metadata in the PyPI package ``idc-index-data`` (modality, body part, sex, age, study date,
instance count of ~1M series of NCI Imaging Data Commons; patients spread over 200 sites by a hash of
the patient), publishes them to a real hub (uvicorn on loopback) over HTTP, then drives it with
16 concurrent clients issuing mixed facet searches for a fixed number of requests. Reports
requests/s and p50/p95/p99 latency for SQLite and PostgreSQL, for a repeating query mix (popular
searches recur) and an all-distinct mix (every request misses the hub's answer cache).

Usage: python benchmarks/catalog_bench.py [--requests 3000] [--sites 200] [--workers 2]
       [--backends sqlite,postgres]
Needs the ``bench`` extra (idc-index-data, pyarrow) and, for PostgreSQL, a server on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import http.client
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.schemas import CohortSummary  # noqa: E402
from site_node.publish.omop_read import SeriesRow  # noqa: E402
from site_node.publish.summary import group_rows, summary_bytes, suppressed_collection  # noqa: E402

COUNTRIES = [
    "DE",
    "FR",
    "IT",
    "ES",
    "NL",
    "BE",
    "AT",
    "CH",
    "SE",
    "DK",
    "NO",
    "FI",
    "PL",
    "CZ",
    "PT",
    "IE",
    "GB",
    "US",
    "CA",
    "JP",
]
SEX = {"M": 8507, "F": 8532}
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def load_series(n_sites: int) -> dict[int, list[SeriesRow]]:
    """IDC series -> per-site SeriesRow lists (modality/body part carried as hashed concept ids)."""
    import idc_index_data
    import pyarrow.parquet as pq

    path = Path(idc_index_data.__file__).with_name("idc_index.parquet")
    cols = [
        "PatientID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "PatientAge",
        "PatientSex",
        "StudyDate",
        "BodyPartExamined",
        "Modality",
        "instanceCount",
    ]
    table = pq.read_table(path, columns=cols).to_pydict()
    per_site: dict[int, list[SeriesRow]] = {}
    persons: dict[str, int] = {}
    for i in range(len(table["SeriesInstanceUID"])):
        patient = table["PatientID"][i] or f"anon-{i}"
        pid = persons.setdefault(patient, len(persons) + 1)
        site = int(hashlib.sha256(patient.encode()).hexdigest()[:8], 16) % n_sites
        date = _date(table["StudyDate"][i])
        age = _age(table["PatientAge"][i])
        born = date.year - age if date and age is not None else None
        row = SeriesRow(
            pid,
            table["StudyInstanceUID"][i] or f"s{i}",
            table["SeriesInstanceUID"][i],
            date,
            _code(table["Modality"][i]),
            _code(table["BodyPartExamined"][i]),
            SEX.get(table["PatientSex"][i] or ""),
            born,
            table["instanceCount"][i],
        )
        per_site.setdefault(site, []).append(row)
    return per_site


_CODES: dict[int, str] = {}


def _code(value: str | None) -> int:
    text = (
        "".join(ch for ch in (value or "").upper() if ch.isalnum() or ch in " _-").strip()[:60] or "UNKNOWN"
    )
    key = int(hashlib.sha256(text.encode()).hexdigest()[:7], 16)
    _CODES[key] = text
    return key


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _age(value: str | None) -> int | None:
    if not value or not value[:3].isdigit():
        return None
    return int(value[:3]) if value.endswith("Y") else 0


def _label(row: SeriesRow) -> tuple[str, str]:
    modality = _CODES[row.modality_concept_id or 0].replace(" ", "")[:16] or "OT"
    body = _CODES[row.anatomic_site_concept_id or 0]
    return (modality if modality.isalnum() else "OT", body if body[0].isalnum() else "UNKNOWN")


def build_summaries(per_site: dict[int, list[SeriesRow]], k: int = 10) -> dict[str, bytes]:
    """site name -> the exact bytes its site node would publish."""
    out = {}
    for site, rows in sorted(per_site.items()):
        collections = [suppressed_collection(g, k) for g in group_rows(rows, _label, {})]
        name = f"site-{site:03d}"
        out[name] = summary_bytes(CohortSummary(site=name, floor_k=k, collections=collections))
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_hub(home: Path, db_url: str, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    from central_hub.home import init_hub

    init_hub(home, db_url)
    port = free_port()
    env = {**os.environ, "HUB_HOME": str(home), "HUB_DB_URL": db_url, "HUB_MAX_PAYLOAD_BYTES": "20000000"}
    cli = Path(sys.executable).with_name("central-hub")  # as an operator runs it
    proc = subprocess.Popen(
        [str(cli), "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("hub did not start")


def make_tokens(db_url: str, sites: list[str]) -> tuple[str, dict[str, str]]:
    from central_hub.auth.tokens import create_token
    from central_hub.catalog.crud import create_site
    from central_hub.db import session_factory

    with session_factory(db_url)() as session:
        researcher = create_token(session, role="researcher", name="bench")[1]
        site_tokens = {}
        for i, name in enumerate(sites):
            site = create_site(session, name, COUNTRIES[i % len(COUNTRIES)], 5)
            site_tokens[name] = create_token(session, role="site", name=name, site_id=site.id)[1]
        session.commit()
    return researcher, site_tokens


def publish_all(url: str, summaries: dict[str, bytes], tokens: dict[str, str]) -> float:
    start = time.perf_counter()
    with httpx.Client(timeout=120) as client:
        for name, body in summaries.items():
            r = client.put(
                f"{url}/summaries",
                content=body,
                headers={"Authorization": f"Bearer {tokens[name]}", "Content-Type": "application/json"},
            )
            r.raise_for_status()
    return time.perf_counter() - start


def query_pool(url: str, token: str, n: int, distinct: bool, seed: int) -> list[list[tuple[str, str]]]:
    """Mixed facet searches drawn from the catalog's real facet values."""
    facets = httpx.get(
        f"{url}/catalog/search",
        params={"facet_limit": 30},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    ).json()["facets"]
    rng = random.Random(seed)
    names = ["modality", "body_part", "sex", "age_band", "study_year_band", "country", "site"]
    pool = []
    for _ in range(n):
        params: list[tuple[str, str]] = []
        for facet in rng.sample(names, rng.choice([0, 1, 1, 2, 2, 3])):
            values = [v["value"] for v in facets[facet]][:30]
            params += [(facet, v) for v in rng.sample(values, min(len(values), rng.choice([1, 1, 2])))]
        if rng.random() < 0.15:
            params.append(("q", rng.choice(["chest", "ct", "brain", "breast", "mr imaging"])))
        params.append(("sort", rng.choice(["-series", "-persons", "site", "-studies"])))
        if distinct:
            params += [("page", str(rng.randint(1, 3))), ("page_size", str(rng.randint(10, 60)))]
        pool.append(params)
    return pool


def drive(
    url: str, token: str, queries: list[list[tuple[str, str]]], requests: int, concurrency: int
) -> tuple[float, list[float], int]:
    """``concurrency`` client threads, each with its own keep-alive connection, share the searches.

    The client is lean (``http.client``: it shares the hub's two cores) and times each request the
    same way for every backend: from sending the request to having read the whole answer.
    """
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(requests))
    headers = {"Authorization": f"Bearer {token}"}
    target = urlsplit(url)
    paths = [f"/catalog/search?{urlencode(q)}" for q in queries]

    def client_loop() -> None:
        nonlocal errors
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        try:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                try:
                    conn.request("GET", paths[i % len(paths)], headers=headers)
                    response = conn.getresponse()
                    response.read()
                    failed = response.status != 200
                except (OSError, http.client.HTTPException):
                    conn.close()  # reconnects on the next request
                    failed = True
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    errors += failed
        finally:
            conn.close()

    threads = [threading.Thread(target=client_loop) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, latencies, errors


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000


def run_backend(backend: str, summaries: dict[str, bytes], args: argparse.Namespace) -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix=f"catalog-bench-{backend}-"))
    db_name = None
    if backend == "sqlite":
        db_url = f"sqlite:///{tmp / 'hub.db'}"
    else:
        from sqlalchemy import create_engine, text

        db_name = f"catalog_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{db_name}"'))
        db_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db_name}"
    from central_hub.home import init_hub

    init_hub(tmp / "hub", db_url)
    researcher, site_tokens = make_tokens(db_url, list(summaries))
    proc, url = start_hub(tmp / "hub", db_url, args.workers)
    rows = []
    try:
        publish_s = publish_all(url, summaries, site_tokens)
        for mix, distinct in (("repeating (200 queries)", False), ("all distinct", True)):
            queries = query_pool(url, researcher, 200 if not distinct else args.requests, distinct, seed=7)
            (drive(url, researcher, queries[:50], 100, args.concurrency))  # warm-up
            wall, lat, errors = drive(url, researcher, queries, args.requests, args.concurrency)
            load = os.getloadavg()[0]
            print(
                f"  {backend} / {mix}: {len(lat) / wall:.0f} req/s, p95 {pct(lat, 95):.1f} ms "
                f"(machine load average {load:.1f})",
                flush=True,
            )
            rows.append(
                {
                    "backend": backend,
                    "mix": mix,
                    "requests": len(lat),
                    "errors": errors,
                    "rps": len(lat) / wall,
                    "p50": pct(lat, 50),
                    "p95": pct(lat, 95),
                    "p99": pct(lat, 99),
                    "publish_s": publish_s,
                }
            )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if db_name:
            from sqlalchemy import create_engine, text

            from central_hub.db import get_engine

            get_engine(db_url).dispose()
            with create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    t0 = time.perf_counter()
    per_site = load_series(args.sites)
    n_series = sum(len(v) for v in per_site.values())
    summaries = build_summaries(per_site)
    del per_site
    n_coll = sum(b.count(b'"key":') for b in summaries.values())
    print(
        f"catalog: {args.sites} sites, {n_series} real series, {n_coll} collections, "
        f"{sum(map(len, summaries.values())) / 1e6:.1f} MB of summaries "
        f"(built in {time.perf_counter() - t0:.0f} s)"
    )
    results = []
    for backend in args.backends.split(","):
        results += run_backend(backend, summaries, args)
    print(
        f"\n{args.concurrency} concurrent clients, {args.requests} searches per mix, "
        f"uvicorn workers={args.workers}, "
        f"{os.cpu_count()} CPUs\n"
    )
    print("| backend | query mix | req/s | p50 ms | p95 ms | p99 ms | errors | publish 200 sites s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['backend']} | {r['mix']} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p95']:.1f} "
            f"| {r['p99']:.1f} "
            f"| {r['errors']} | {r['publish_s']:.1f} |"
        )


if __name__ == "__main__":
    main()
