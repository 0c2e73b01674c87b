"""RecBole 1.2.1's SASRec on an exported split; run by ``recbole_compare.py`` in RecBole's own venv.

    benchmarks/.venv-recbole/bin/python benchmarks/recbole_runner.py '<RecBole config as JSON>'

The config is RecBole's ``config_dict`` plus ``threads`` and ``deadline`` (epoch seconds or null:
no epoch starts that, at the last epoch's pace, would end later). It prints one line per epoch
(``  recbole epoch N: valid NDCG@10 x``) and, last, ``RESULT {json}`` with the full-catalogue ranks
of the test targets (same definition as :mod:`kgrec.recommender.metrics`: ties count against the
target) and the timings. Nothing of kgrec is imported here: this runs in another venv.

RecBole saves its best checkpoint with its ``Config`` object inside, which torch >= 2.6 refuses to
load with ``weights_only=True``; ``torch.load`` is therefore given ``weights_only=False`` in this
process only, for the checkpoint this same process has just written.
"""

import json
import sys
import time


class Deadline(Exception):
    pass


def main() -> None:
    t0 = time.perf_counter()
    import torch

    _load = torch.load
    torch.load = lambda *a, **kw: _load(*a, **{"weights_only": False, **kw})
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg.pop("threads"))
    deadline = cfg.pop("deadline")
    config = Config(model="SASRec", dataset="kgrec", config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    tok = dataset.field2id_token["item_id"]
    assert dataset.field2id_token.get("item_id_list", tok) is tok, "item_id_list is not aliased to item_id"
    train, valid, test = data_preparation(config, dataset)
    model = SASRec(config, train.dataset).to(config["device"])
    trainer = Trainer(config, model)
    stamps = [time.perf_counter()]
    _valid, _train = trainer._valid_epoch, trainer._train_epoch

    def valid_epoch(*a, **kw):
        out = _valid(*a, **kw)
        stamps.append(time.perf_counter())
        print(f"  recbole epoch {len(stamps) - 2}: valid NDCG@10 {out[0]:.4f}", flush=True)
        return out

    def train_epoch(*a, **kw):  # same rule as kgrec's side: no epoch that would end after the deadline
        if deadline and len(stamps) > 1 and time.time() + stamps[-1] - stamps[-2] > deadline:
            raise Deadline
        return _train(*a, **kw)

    trainer._valid_epoch, trainer._train_epoch = valid_epoch, train_epoch
    stopped = False
    try:
        trainer.fit(train, valid, saved=True, show_progress=False)
    except Deadline:
        stopped = True
    best = trainer.best_valid_score
    res = trainer.evaluate(test, load_best_model=True, show_progress=False)
    model.eval()
    ranks: list[int] = []
    with torch.no_grad():
        for inter, _hist, _pu, pos in test:
            s = model.full_sort_predict(inter).view(len(pos), -1).float()
            s[:, 0] = -torch.inf
            t = s.gather(1, pos.view(-1, 1))
            ranks += (1 + (s > t).sum(1) + (s == t).sum(1) - 1).tolist()
    n_ep = len(stamps) - 1
    print("RESULT " + json.dumps({
        "ranks": ranks, "recbole_hit@10": float(res["hit@10"]), "recbole_ndcg@10": float(res["ndcg@10"]),
        "best_valid_ndcg": float(best), "epochs_run": n_ep, "deadline_stop": stopped,
        "s_per_epoch": (stamps[-1] - stamps[0]) / max(1, n_ep), "train_rows": len(train.dataset),
        "steps_per_epoch": len(train), "n_items": int(dataset.item_num) - 1,
        "wall_s": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
