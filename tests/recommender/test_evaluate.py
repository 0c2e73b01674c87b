import json
import math

import pytest

from kgrec.recommender import evaluate as E
from kgrec.recommender import report as R
from kgrec.recommender import training
from kgrec.recommender.fusion import default_grid

NAMES = {"popularity", "sasrec", "llmseqsim", "retriever_no_persona", "retriever_history_user", "sasrec_persona_residual",
         "retriever_persona", "full_pipeline", "pipeline_history_user"}
METRICS = {"HR@10", "HR@100", "NDCG@10", "MRR", "LT-HR@100", "coverage"}


@pytest.mark.parametrize("protocol,seeds", [("session", (0, 1)), ("loo", (0,))])
def test_evaluate_all_end_to_end(tiny, tmp_path, monkeypatch, protocol, seeds):
    split, emb, personas = tiny
    valid_sets = []
    real_fit = training.fit

    def spy(model, windows, valid, **kw):
        valid_sets.append(valid)
        return real_fit(model, windows, valid, **kw)

    monkeypatch.setattr(training, "fit", spy)
    msgs = []
    res = E.evaluate_all(split, emb, personas, seeds=seeds, epochs=2, device="cpu", progress=msgs.append,
                         max_len=12, protocol=protocol, sasrec_kwargs={"hidden": 16, "num_blocks": 1},
                         retriever_kwargs={"hidden": 16}, fusions=("prefix", "gate"))
    assert set(res) == NAMES and res.extra["protocol"] == protocol and res.extra["exclude_seen"] is True
    for name, mets in res.items():
        assert set(mets) == METRICS, name
        for cell in mets.values():
            assert set(cell) == {"mean", "std", "n"} and cell["n"] <= len(seeds)  # n: seeds with a value
            assert math.isnan(cell["mean"]) or 0.0 <= cell["mean"] <= 1.0
    assert res["popularity"]["HR@10"]["std"] == 0.0
    assert set(res.extra["fusion"]) == {"prefix", "gate"}
    assert len(res.extra["chosen_fusion"]) == len(seeds) and len(res.extra["plan"]) == len(seeds) and msgs
    # early stopping only ever saw validation examples
    # per seed: sasrec, session, 2 persona, residual, 2 history-user, history residual (each once)
    assert len(valid_sets) == 8 * len(seeds)
    assert all(p in ("prefix", "gate", "residual") for p in res.extra["persona_part"])
    assert len(res.extra["part_valid"]) == len(res.extra["residual_epoch"]) == len(seeds)
    prep = E.prepare(split, emb, personas, max_len=12, protocol=protocol)
    for v in valid_sets:
        assert v.targets.tolist() == prep.valid.targets.tolist() and v.users == prep.valid.users
    if protocol == "session":
        assert len(prep.valid) == len(split["valid"])
        assert prep.vocab.decode(prep.valid.targets) == list(split["valid"].sort_values(["user", "ts"])["item"])
        bd = res.extra["breakdown"]["full_pipeline"]
        assert sum(bd[b]["n"] for b in ("0", "1", "2-4", "5+")) == len(prep.test)
        assert bd["0"]["n"] == split["test"]["session"].nunique()
    else:
        assert len(prep.test) == split["test"]["user"].nunique()
    paths = R.write_report(res, tmp_path)
    md = paths["md"].read_text()
    assert f"Protocol: {protocol}" in md and "full_pipeline" in md and "excluded" in md
    assert ("By prefix length" in md) == (protocol == "session") == ("paper's claims" in md)
    assert "Fusion plan per prefix-length bucket" in md and "Every fusion setting tried" in md
    assert len(res.extra["grid_valid"][0]) == len(default_grid())
    assert paths["png"].stat().st_size > 0
    js = json.loads(paths["json"].read_text())
    assert set(js["results"]) == NAMES and js["protocol"] == protocol
    assert js["extra"]["chosen_fusion"] == res.extra["chosen_fusion"]


def test_subsample_users_keeps_whole_users_and_the_catalogue(tiny):
    import pytest

    from kgrec.errors import ConfigError

    split, _, _ = tiny
    test_users = sorted(split["test"]["user"].astype(str).unique())
    sub = E.subsample_users(split, 2, seed=0)
    kept = set(sub["test"]["user"].astype(str))
    assert len(kept) == 2 and kept <= set(test_users)
    for name in ("train", "valid", "test"):
        frame = split[name]
        mine = frame[frame["user"].astype(str).isin(kept)]
        assert len(sub[name]) == len(mine) and set(sub[name]["user"].astype(str)) <= kept
    assert sub["items"] is split["items"]  # the ranked catalogue is not cut
    assert E.subsample_users(split, 2, seed=0)["test"].equals(sub["test"])  # seeded
    assert len(set(E.subsample_users(split, 10**6)["test"]["user"])) == len(test_users)
    with pytest.raises(ConfigError, match="at least 1"):
        E.subsample_users(split, 0)


def test_runs_over_disjoint_seeds_merge_into_one_table(tiny, tmp_path):
    split, emb, personas = tiny
    kw = {"epochs": 1, "max_len": 12, "fusions": ("prefix",), "sasrec_kwargs": {"hidden": 16, "num_blocks": 1},
          "retriever_kwargs": {"hidden": 16}}
    parts = [json.loads(R.write_report(E.evaluate_all(split, emb, personas, seeds=(s,), **kw),
                                       tmp_path / str(s))["json"].read_text())["extra"] for s in (0, 1)]
    both = E.evaluate_all(split, emb, personas, seeds=(0, 1), **kw)
    merged = E.merge_results(parts)
    assert merged.extra["seeds"] == [0, 1]
    for model in both:
        for metric in ("HR@10", "NDCG@10", "MRR"):
            assert merged[model][metric]["mean"] == pytest.approx(both[model][metric]["mean"]), (model, metric)
            assert merged[model][metric]["std"] == pytest.approx(both[model][metric]["std"]), (model, metric)


def test_claims_need_two_seeds_to_clear_the_2_std_bar():
    one = {"full_pipeline": E.aggregate([{"HR@10": 0.2}]), "sasrec": E.aggregate([{"HR@10": 0.1}])}
    row = next(r for r in R.claims_table(one) if "SASRec" in r and "HR@10" in r)
    assert row.endswith("| n/a: 1 seed (better) |")  # no std from one seed: no verdict
    three = {"full_pipeline": E.aggregate([{"HR@10": v} for v in (0.20, 0.21, 0.22)]),
             "sasrec": E.aggregate([{"HR@10": v} for v in (0.10, 0.11, 0.12)])}
    assert next(r for r in R.claims_table(three) if "SASRec" in r and "HR@10" in r).endswith("| yes |")
    close = {"full_pipeline": E.aggregate([{"HR@10": v} for v in (0.10, 0.15, 0.20)]),
             "sasrec": E.aggregate([{"HR@10": v} for v in (0.10, 0.11, 0.12)])}
    assert "within 2 std" in next(r for r in R.claims_table(close) if "SASRec" in r and "HR@10" in r)
