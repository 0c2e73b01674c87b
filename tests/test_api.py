"""`kgrec serve` as a real process on a free port, over a trained ml-mini home with its own embedded
FalkorDB: every endpoint, every error code, reload without dropped requests, serving while
`kgrec train personas` rewrites the vectors, batched write-back, and 503 once the store is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from kgrec.kg.build import BuildOptions, build
from kgrec.kg.falkordb_server import free_port
from kgrec.kg.store import open_store
from kgrec.settings import Settings

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "ml-mini"
SMALL = {"max_len": 12, "sasrec_kwargs": {"hidden": 16, "num_blocks": 1}, "retriever_kwargs": {"hidden": 16}}
PERSONAS = {"epochs": 3, "hidden": 16, "patience": 3, "k": 3, "seed": 0}


def _env(home: Path, settings: Settings | None = None) -> dict[str, str]:
    uri = {"KGREC_GRAPH_URI": settings.graph_uri} if settings is not None and settings.graph_uri else {}
    return os.environ | {"KGREC_HOME": str(home), "HF_HUB_OFFLINE": "1", "KGREC_TORCH_THREADS": "1"} | uri


def trained_home(home: Path, shared_cache: Path, settings: Settings | None = None) -> Settings:
    """ml-mini graph (seeded 384-d item vectors), HDGI personas, a small recommender; ``settings``
    name another store (the session's Neo4j), else the home gets its own embedded FalkorDB."""
    import torch

    from kgrec.personas.workflow import train_personas
    from kgrec.recommender import workflow as W

    torch.set_num_threads(1)
    if settings is None:
        home.mkdir(parents=True, exist_ok=True)
        (home / "cache").symlink_to(shared_cache, target_is_directory=True)
        settings = Settings(home=home)
    with open_store(settings) as store:
        build(store, settings, BuildOptions(kind="movielens", data=FIXTURE, k_core=3, embeddings=False))
        items = [r["id"] for r in store.execute("MATCH (i:Item) RETURN i.id AS id ORDER BY id")]
        store.write_vectors("Item", "emb", items,
                            np.random.default_rng(0).normal(size=(len(items), 384)).astype(np.float32))
        train_personas(store, settings, **PERSONAS)
        W.train(store, settings, epochs=1, k=30, **SMALL)
    return settings


@pytest.fixture(scope="module")
def served(module_backend, request, embedded_home, tmp_path_factory, shared_cache, make_backend_settings):
    """`kgrec serve` on a trained home, once per backend: on FalkorDB the home's own embedded server
    (the last test kills it), on Neo4j the session's cleared database."""
    if module_backend == "neo4j":
        home = tmp_path_factory.mktemp("serve-neo4j") / "home"
        settings = trained_home(home, shared_cache, make_backend_settings(
            module_backend, request, embedded_home, shared_cache, home))
    else:
        home = tmp_path_factory.mktemp("serve-home")
        settings = trained_home(home, shared_cache)
    port = free_port()
    log = (home / "serve.log").open("w")  # a file, not a pipe nobody reads (a full pipe blocks the server)
    proc = subprocess.Popen([sys.executable, "-m", "kgrec.cli", "serve", "--port", str(port), "--access-log"],
                            env=_env(home, settings), stdout=log, stderr=subprocess.STDOUT, text=True)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    deadline = time.monotonic() + 120
    while True:
        try:
            if client.get("/health").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("kgrec serve did not come up:\n" + (home / "serve.log").read_text()[-3000:])
        time.sleep(0.2)
    with open_store(settings) as store:
        users = sorted(r["id"] for r in store.execute(
            "MATCH (u:User) WHERE u.persona IS NOT NULL RETURN u.id AS id", read_only=True))
        items = sorted(r["id"] for r in store.execute("MATCH (i:Item) RETURN i.id AS id", read_only=True))
    yield {"client": client, "proc": proc, "home": home, "settings": settings, "users": users, "items": items,
           "backend": module_backend}
    client.close()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()  # it released no lease: stop the home's server here, or it is orphaned
        if module_backend == "falkordb":
            from kgrec.kg import falkordb_server

            falkordb_server.unpin(home)
    log.close()
    assert "Traceback" not in (home / "serve.log").read_text()


def _error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"error", "message"} and "Traceback" not in r.text
    return body


def test_health_reports_versions(served) -> None:
    r = served["client"].get("/health")
    body = r.json()
    assert r.status_code == 200 and body["store_reachable"] and body["status"] == "ok"
    v = body["versions"]
    assert v["recommender"]["fingerprint"] and v["persona_model"] and v["generation"] == 0
    assert v["users"] == len(served["users"]) and v["items"] == len(served["items"])


def test_recommend_known_user_get_and_post(served) -> None:
    c, user = served["client"], served["users"][0]
    r = c.get("/recommend", params={"user": user, "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"] == user and body["persona_source"] == "past" and len(body["items"]) == 5
    assert [x["rank"] for x in body["items"]] == [1, 2, 3, 4, 5]
    assert all(x["item"] in served["items"] for x in body["items"])
    post = c.post("/recommend", json={"user": user, "k": 5}).json()
    assert [x["item"] for x in post["items"]] == [x["item"] for x in body["items"]]  # same path, same answer


def test_the_http_answer_is_the_cli_answer(served) -> None:
    """One recommend path: the CLI (fresh process, store round trips) and the snapshot agree."""
    user = served["users"][1]
    out = subprocess.run([sys.executable, "-m", "kgrec.cli", "recommend", "--user", user, "-k", "5", "--json"],
                         env=_env(served["home"], served["settings"]), capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stderr
    import json

    cli = [x["item"] for x in json.loads(out.stdout)["items"]]
    http = [x["item"] for x in served["client"].get("/recommend", params={"user": user, "k": 5}).json()["items"]]
    assert cli == http


def test_anonymous_session_has_no_past_and_so_no_persona(served) -> None:
    session = served["items"][:3]
    r = served["client"].post("/recommend", json={"session": session, "k": 4, "exclude_seen": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"] is None and body["persona_source"] == "none" and len(body["items"]) == 4
    assert any("no past" in n for n in body["notes"])
    assert not set(session) & {x["item"] for x in body["items"]}


def test_404_names_the_unknown_id(served) -> None:
    c = served["client"]
    assert "no-such-user" in _error(c.get("/recommend", params={"user": "no-such-user"}), 404)["message"]
    body = _error(c.post("/recommend", json={"session": [served["items"][0], "no-such-item"]}), 404)
    assert "no-such-item" in body["message"]
    assert "no-such-item" in _error(c.get("/explain", params={"user": served["users"][0],
                                                               "item": "no-such-item"}), 404)["message"]
    assert "nope" in _error(c.get("/personas/nope"), 404)["message"]


def test_422_for_bad_input(served) -> None:
    c, user = served["client"], served["users"][0]
    _error(c.get("/recommend", params={"user": user, "k": 0}), 422)
    _error(c.get("/recommend"), 422)
    _error(c.post("/recommend", json={}), 422)  # neither user nor session
    _error(c.post("/recommend", json={"session": "not-a-list"}), 422)
    _error(c.post("/recommend", content=b"{not json", headers={"content-type": "application/json"}), 422)
    _error(c.post("/recommend", json={"session": served["items"][:2], "write": True}), 422)
    _error(c.get("/explain", params={"user": user, "item": served["items"][0], "n": 0}), 422)


def test_explain(served) -> None:
    c, user = served["client"], served["users"][0]
    item = c.get("/recommend", params={"user": user, "k": 1}).json()["items"][0]["item"]
    r = c.get("/explain", params={"user": user, "item": item, "n": 3})
    assert r.status_code == 200, r.text
    assert isinstance(r.json(), list) and len(r.json()) <= 3
    assert all(set(e) >= {"kind", "score", "reason"} for e in r.json())


def test_personas(served) -> None:
    c = served["client"]
    groups = c.get("/personas").json()
    assert len(groups) == PERSONAS["k"] and sum(g["size"] for g in groups) == len(served["users"])
    assert all(isinstance(g["top_items"], list) and g["top_items"] for g in groups)  # the analyst's columns
    one = c.get(f"/personas/{groups[0]['persona']}")
    assert one.status_code == 200 and one.json() == groups[0]


def test_docs_and_openapi(served) -> None:
    c = served["client"]
    assert c.get("/docs").status_code == 200
    spec = c.get("/openapi.json").json()
    assert {"/recommend", "/explain", "/personas", "/personas/{persona_id}", "/health", "/reload",
            "/metrics"} <= set(spec["paths"])
    assert "RecommendRequest" in spec["components"]["schemas"]


def test_metrics(served) -> None:
    c = served["client"]
    c.get("/recommend", params={"user": "no-such-user"})
    text = c.get("/metrics").text
    assert 'kgrec_http_requests_total{method="GET",route="/recommend",status="404"}' in text
    assert "kgrec_http_request_duration_seconds_bucket" in text
    assert 'kgrec_http_errors_total{error="NotFoundError",route="/recommend"}' in text


def test_write_back_is_batched_off_the_request_path(served) -> None:
    c, users = served["client"], served["users"][:5]
    for u in users:
        body = c.post("/recommend", json={"user": u, "k": 3, "write": True}).json()
        assert body["write_queued"] and body["run"]
    deadline = time.monotonic() + 20
    with open_store(served["settings"]) as store:
        while True:
            rows = store.execute("MATCH (u:User)-[r:RECOMMENDED]->(:Item) WHERE u.id IN $users "
                                 "RETURN u.id AS u, count(r) AS n", {"users": users}, read_only=True)
            if len(rows) == len(users) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert {r["u"]: r["n"] for r in rows} == dict.fromkeys(users, 3)


def _hammer(c: httpx.Client, users: list[str], items: list[str], stop: threading.Event, out: list) -> None:
    n = 0
    while not stop.is_set():
        if n % 2:
            r = c.get("/recommend", params={"user": users[n % len(users)], "k": 5})
        else:
            r = c.post("/recommend", json={"session": items[n % 20: n % 20 + 3], "k": 5})
        out.append(r.status_code)
        n += 1


def test_serving_while_train_personas_rewrites_vectors_and_reload(served) -> None:
    """Requests keep being answered while another process retrains the personas (rewriting every
    User.persona) and while /reload swaps the snapshot: no request fails or is dropped."""
    c, home = served["client"], served["home"]
    stop, codes = threading.Event(), []
    workers = [threading.Thread(target=_hammer, args=(httpx.Client(base_url=c.base_url, timeout=30),
                                                      served["users"], served["items"], stop, codes))
               for _ in range(3)]
    for w in workers:
        w.start()
    try:
        train = subprocess.run(
            [sys.executable, "-m", "kgrec.cli", "train", "personas", "--epochs", "3", "--hidden", "16",
             "--patience", "3", "-k", "3", "--seed", "1"],
            env=_env(home, served["settings"]), capture_output=True, text=True, timeout=600, check=False)
        assert train.returncode == 0, train.stderr[-2000:]
        during = len(codes)
        reload = c.post("/reload")
        assert reload.status_code == 200, reload.text
        time.sleep(1.0)
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    assert during > 0 and len(codes) > during
    assert set(codes) == {200}, {s: codes.count(s) for s in set(codes)}
    health = c.get("/health").json()["versions"]
    assert health["generation"] == 1 and health["persona_model"] == reload.json()["versions"]["persona_model"]
    with open_store(served["settings"]) as store:  # the reload picked up the new personas
        version = store.run("personas_version", read_only=True)[0]["version"]
    assert str(version).startswith(health["persona_model"])


# --- schemathesis: property-based calls generated from the OpenAPI spec ---------------------------
FUZZ_EXAMPLES = 25  # per operation and mode; bounded so that `make test` runs it


def _store_state(settings: Settings) -> dict:
    """Everything but RECOMMENDED edges (the only thing a call may write, with write=true)."""
    with open_store(settings) as store:
        counts = store.counts()
        personas = store.execute("MATCH (u:User) RETURN u.id AS id, u.persona_version AS v ORDER BY id",
                                 read_only=True)
    counts["relationships"].pop("RECOMMENDED", None)
    return {"counts": counts, "personas": personas}


def _fuzz(op, mode, calls: dict, failures: list) -> None:
    """Up to FUZZ_EXAMPLES generated cases of one operation in one mode (valid or invalid data)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.errors import FailureGroup

    name = f"{op.method.upper()} {op.path}"

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)
    def run(case) -> None:
        response = case.call(timeout=30)
        seen = calls.setdefault(name, {})
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        try:
            case.validate_response(response)
        except FailureGroup as e:  # collect; the test reports every operation's failures at once
            failures.append(f"{name} [{mode.value}]: " + "; ".join(str(x).splitlines()[0] for x in e.exceptions))

    try:
        run()
    except Unsatisfiable:  # an operation without parameters has no invalid input to send
        assert mode.value == "negative", name


@pytest.mark.slow
def test_fuzz_openapi_with_schemathesis(served) -> None:
    """Valid and invalid requests generated from /openapi.json for every operation: no 500s, no
    hangs (30 s per call), responses that conform to the spec, and the store unchanged."""
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{served['client'].base_url}/openapi.json")
    before = _store_state(served["settings"])
    calls: dict[str, dict[int, int]] = {}
    failures: list[str] = []
    for result in schema.get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(result.ok(), mode, calls, failures)
    print(f"\nschemathesis: {sum(sum(c.values()) for c in calls.values())} calls, status codes per "
          f"operation: {calls}")
    assert calls and not any(code >= 500 for c in calls.values() for code in c), calls
    assert failures == [], failures[:10]
    assert _store_state(served["settings"]) == before  # nothing but write-back changed the store


def test_store_down_is_503_not_a_traceback(served) -> None:
    """Last in the module: kill the home's database under the running service."""
    import json

    if served["backend"] == "neo4j":
        pytest.skip("it kills the database; on Neo4j that is the session's shared server")

    state = json.loads((served["home"] / "falkordb" / "server.json").read_text())
    os.kill(state["pid"], signal.SIGKILL)
    c = served["client"]
    time.sleep(0.5)
    health = c.get("/health")
    assert health.status_code == 503 and health.json()["store_reachable"] is False
    body = _error(c.get("/explain", params={"user": served["users"][0], "item": served["items"][0]}), 503)
    assert body["error"] == "StoreUnavailable"
