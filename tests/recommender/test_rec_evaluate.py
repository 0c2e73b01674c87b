import json
import math

from kgrec.recommender import evaluate as E
from kgrec.recommender import training

NAMES = {"popularity", "sasrec", "llmseqsim", "retriever_no_persona", "retriever_history_user", "full_pipeline"}
METRICS = {"HR@10", "HR@100", "NDCG@10", "MRR", "LT-HR@100", "coverage"}


def test_evaluate_all_end_to_end(tiny, tmp_path, monkeypatch):
    split, emb, personas = tiny
    valid_sets = []
    real_fit = training.fit

    def spy(model, windows, valid, **kw):
        valid_sets.append(valid)
        return real_fit(model, windows, valid, **kw)

    monkeypatch.setattr(training, "fit", spy)
    msgs = []
    res = E.evaluate_all(split, emb, personas, None, seeds=(0, 1), epochs=2, device="cpu", progress=msgs.append,
                         max_len=12, sasrec_kwargs={"hidden": 16, "num_blocks": 1},
                         retriever_kwargs={"hidden": 16})
    assert set(res) == NAMES
    for name, mets in res.items():
        assert set(mets) == METRICS, name
        for cell in mets.values():
            assert set(cell) == {"mean", "std"}
            assert math.isnan(cell["mean"]) or 0.0 <= cell["mean"] <= 1.0
    assert res["popularity"]["HR@10"]["std"] == 0.0
    assert set(res.extra["fusion"]) == {"prefix", "gate"} and res.extra["chosen_fusion"] in ("prefix", "gate")
    assert len(res.extra["alpha"]) == 2 and msgs
    # early stopping only ever saw validation examples: one per valid row, targets = valid items
    vocab = E.prepare(split, emb, personas, max_len=12).vocab
    assert len(valid_sets) == 2 * 6  # per seed: sasrec, no-persona, 2 persona, 2 history-user retrievers
    for v in valid_sets:
        assert len(v) == len(split["valid"])
        assert vocab.decode(v.targets) == list(split["valid"].sort_values(["user", "ts"], kind="stable")["item"])
    paths = E.write_report(res, tmp_path)
    assert "full_pipeline" in paths["md"].read_text() and paths["png"].stat().st_size > 0
    js = json.loads(paths["json"].read_text())
    assert set(js["results"]) == NAMES and js["extra"]["chosen_fusion"] == res.extra["chosen_fusion"]


def test_valid_examples_use_train_history_only(tiny):
    split, emb, personas = tiny
    prep = E.prepare(split, emb, personas, max_len=50)
    u = prep.valid.users[0]
    n_train = int((split["train"]["user"] == u).sum())
    first = prep.valid.seqs[0]
    assert int((first != 0).sum()) == n_train
    # test history also contains the valid session
    i = prep.test.users.index(u)
    assert int((prep.test.seqs[i] != 0).sum()) == n_train + int((split["valid"]["user"] == u).sum())


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
