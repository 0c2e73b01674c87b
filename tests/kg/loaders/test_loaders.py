"""Loaders: each data set layout → the canonical tables (kgrec.kg.tables)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kgrec.errors import ConfigError, DataError
from kgrec.kg.loaders import KINDS, load_dataset, load_kgat_with_test
from kgrec.kg.loaders.movielens import split_title
from kgrec.kg.tables import INTERACTION_COLUMNS, ITEM_COLUMNS, Ordering

FIX = Path(__file__).resolve().parents[2] / "fixtures"
SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def check_tables(ds) -> None:
    """The canonical contract every loader must meet."""
    inter, items = ds.interactions, ds.items
    assert tuple(inter.columns) == INTERACTION_COLUMNS
    assert inter["user"].dtype == object and inter["item"].dtype == object
    assert all(isinstance(v, str) for v in inter["user"].head(50))
    assert all(isinstance(v, str) for v in inter["item"].head(50))
    assert inter["ts"].dtype == np.float64
    assert inter["order"].dtype == np.int64
    assert inter["rating"].dtype == np.float64
    assert tuple(items.columns) == ITEM_COLUMNS
    assert str(items["year"].dtype) == "Int64"
    assert items["item"].is_unique
    assert set(inter["item"]) <= set(items["item"]), "every interaction item has an items row"
    for c in ("genres", "categories", "related"):
        assert all(isinstance(v, list) for v in items[c])
    assert all(isinstance(v, str) for v in items["title"])
    # order is each user's position in file order: 0..n-1 without gaps
    if len(inter):
        first = inter.groupby("user", sort=False)["order"].agg(["min", "max", "size"])
        assert (first["min"] == 0).all() and (first["max"] == first["size"] - 1).all()


def item(ds, iid: str) -> dict:
    rows = ds.items[ds.items["item"] == iid]
    assert len(rows) == 1, iid
    return rows.iloc[0].to_dict()


# --------------------------------------------------------------------------- MovieLens


def test_movielens_fixture():
    ds = load_dataset("movielens", FIX / "movielens", strict=True)
    check_tables(ds)
    assert ds.ordering is Ordering.TIMESTAMP
    assert len(ds.interactions) == 30
    assert ds.interactions["user"].nunique() == 3
    assert len(ds.items) == 33  # the movies.csv catalogue, rated or not
    assert ds.report.malformed == 0
    first = ds.interactions.iloc[0]
    assert (first["user"], first["item"], first["rating"], first["ts"]) == ("1", "1", 4.0, 964982703.0)
    toy = item(ds, "1")
    assert toy["title"] == "Toy Story" and toy["year"] == 1995
    assert toy["genres"] == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    assert item(ds, "11")["title"] == "American President, The"  # quoted comma
    babylon = item(ds, "40697")
    assert babylon["title"] == "Babylon 5" and pd.isna(babylon["year"])
    assert item(ds, "143410")["genres"] == []  # "(no genres listed)"


def test_movielens_ratings_file_path_finds_movies_beside_it():
    ds = load_dataset("movielens", FIX / "movielens" / "ratings.csv")
    assert item(ds, "1")["title"] == "Toy Story"


def test_split_title():
    assert split_title("Toy Story (1995)") == ("Toy Story", 1995)
    assert split_title("Ready Player One (2018) ") == ("Ready Player One", 2018)
    assert split_title("Fawlty Towers (1975-1979)") == ("Fawlty Towers", 1975)
    assert split_title("Babylon 5") == ("Babylon 5", None)
    assert split_title("1984 (1956)") == ("1984", 1956)


@pytest.fixture
def bad_movielens(tmp_path: Path) -> Path:
    d = tmp_path / "ml"
    shutil.copytree(FIX / "movielens", d)
    with (d / "ratings.csv").open("a") as fh:
        fh.write("1,6,abc,964982703\n")  # line 32: non-numeric rating
        fh.write("1,6,4.0\n")  # line 33: too few columns
        fh.write("2,999999,4.0,964982703\n")  # line 34: movie not in movies.csv
        fh.write("3,6,2.5,964982800\n")  # good
    return d


def test_movielens_malformed_rows_are_counted(bad_movielens: Path):
    ds = load_dataset("movielens", bad_movielens)
    assert ds.report.malformed == 3
    assert len(ds.interactions) == 31
    path = bad_movielens / "ratings.csv"
    assert ds.report.examples[0].startswith(f"{path}:32: non-numeric")
    assert ds.report.examples[1].startswith(f"{path}:33: expected 4 columns")
    assert ds.report.examples[2] == f"{path}:34: movieId 999999 is not in movies.csv"


def test_movielens_strict_raises_with_file_and_line(bad_movielens: Path):
    with pytest.raises(DataError, match=r"ratings\.csv:32: non-numeric"):
        load_dataset("movielens", bad_movielens, strict=True)


def test_movielens_bad_header(tmp_path: Path):
    (tmp_path / "ratings.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match="lacks column"):
        load_dataset("movielens", tmp_path)


# --------------------------------------------------------------------------- Amazon


def test_amazon_2014_with_python_literal_meta():
    ds = load_dataset("amazon", FIX / "amazon-2014", strict=True)
    check_tables(ds)
    assert ds.ordering is Ordering.TIMESTAMP
    assert len(ds.interactions) == 5 and ds.interactions["user"].nunique() == 3
    assert ds.interactions["ts"].iloc[0] == 1390953600.0
    assert ds.interactions["rating"].tolist() == [5.0, 4.0, 4.0, 3.0, 5.0]
    # metadata only for reviewed items (B0002HYEN2 is in meta only)
    assert set(ds.items["item"]) == {"0439893577", "B000BX9JRC", "B00004TFT1"}
    m = item(ds, "0439893577")
    assert m["title"] == "Magnetic Alphabet Letters" and m["brand"] == "Scholastic"
    assert m["categories"] == ["Toys & Games", "Learning & Education", "Early Development Toys", "Puzzles"]
    assert m["related"] == ["B00004TFT1", "B000BX9JRC", "B0002HYEN2"]
    assert item(ds, "B00004TFT1")["title"] == ""  # reviewed, no metadata


def test_amazon_2018():
    ds = load_dataset("amazon", FIX / "amazon-2018", strict=True)
    check_tables(ds)
    assert len(ds.interactions) == 4
    anno = item(ds, "0700026657")
    assert anno["title"] == "Anno 2070"
    assert anno["brand"] == "Ubisoft"  # "by\n    \n    Ubisoft"
    assert anno["year"] == 2011  # from "date"
    assert anno["description"].startswith("Anno 2070 is a city-building") and "year 2070" in anno["description"]
    assert anno["categories"] == ["Video Games", "PC", "Games"]  # main_cat first, duplicates merged
    assert anno["related"] == ["B00000K1U8", "B0050SX9HS", "B0050SXAA0"]
    assert anno["publisher"] == "Ubisoft"
    dungeon = item(ds, "B00000K1U8")
    assert not any(c.startswith("<") for c in dungeon["categories"])  # HTML main_cat dropped
    assert pd.isna(dungeon["year"])


def test_amazon_2023_ms_timestamps_and_details():
    ds = load_dataset("amazon", FIX / "amazon-2023", strict=True)
    check_tables(ds)
    inter = ds.interactions
    assert inter["ts"].iloc[0] == 1440385637.0  # ms → s
    assert inter["ts"].iloc[2] == pytest.approx(1646271834.582)
    assert "B003H3IOKU" in set(inter["item"]) and "B003H3IOKX" not in set(inter["item"])  # parent_asin
    pete = item(ds, "B013488XFS")
    assert pete["title"] == "Sneaky Pete Season 1" and pete["director"] == "Seth Gordon"
    assert pete["year"] == 2017 and pete["brand"] == "Amazon Studios"
    assert pete["categories"][0] == "Prime Video" and "Drama" in pete["categories"]
    assert pete["description"] == "A con man on the run assumes the identity of his cellmate."
    assert item(ds, "B00CB6VTDS")["related"] == ["B013488XFS"]
    book = item(ds, "B003H3IOKU")
    assert book["author"] == "Robert Jordan" and book["publisher"] == "Tor Books" and book["year"] == 2010


def test_amazon_single_gz_file_finds_meta_beside_it(tmp_path: Path):
    for name in ("Movies_and_TV.jsonl", "meta_Movies_and_TV.jsonl"):
        with gzip.open(tmp_path / f"{name}.gz", "wt") as fh:
            fh.write((FIX / "amazon-2023" / name).read_text())
    ds = load_dataset("amazon", tmp_path / "Movies_and_TV.jsonl.gz", strict=True)
    assert ds.name == "Movies_and_TV"
    assert len(ds.interactions) == 4
    assert item(ds, "B013488XFS")["director"] == "Seth Gordon"
    with pytest.raises(DataError, match="metadata file"):
        load_dataset("amazon", tmp_path / "meta_Movies_and_TV.jsonl.gz")


def test_amazon_2023_regrouped_sample():
    ds = load_dataset("amazon", FIX / "amazon-2023-sample", strict=True)
    check_tables(ds)
    inter = ds.interactions
    assert inter["user"].nunique() == 4 and len(inter) == 20  # 4 history + 1 heldout each
    first = inter.iloc[0]
    assert first["item"] == "B003H3IOKU" and first["ts"] == 1389549043.0 and first["rating"] == 2.0
    # the held-out review comes last in each user's order and is the user's latest
    last = inter.sort_values("order").groupby("user").tail(1).set_index("user")
    assert last.loc["AE427MY65PZ6FNZ2IY6HCTIIQZEQ", "item"] == "B012EHKDTO"
    latest = inter.groupby("user")["ts"].max()
    assert (latest == last["ts"].reindex(latest.index)).all()
    assert inter["ts"].between(1e9, 2e9).all()
    w = item(ds, "B003H3IOKU")
    assert w["title"] == "Winter's Heart: Book Nine of The Wheel of Time" and w["categories"] == ["Buy a Kindle"]
    main = {c[0] for c in ds.items["categories"] if c}
    assert "Buy a Kindle" in main and main & {"Movies & TV", "Prime Video"}


def test_amazon_malformed_lines(tmp_path: Path):
    lines = (FIX / "amazon-2023" / "Movies_and_TV.jsonl").read_text().splitlines()
    lines.insert(1, '{"user_id": "U1", "parent_asin": "B1", "rating": 4.0')  # line 2: broken JSON
    lines.insert(3, '{"user_id": "U1", "parent_asin": "B1", "rating": 4.0}')  # line 4: no timestamp
    lines.insert(4, '{"foo": 1}')  # line 5: not a review
    f = tmp_path / "Movies_and_TV.jsonl"
    f.write_text("\n".join(lines) + "\n")
    ds = load_dataset("amazon", f)
    assert ds.report.malformed == 3 and len(ds.interactions) == 4
    assert [e.split(": ")[0] for e in ds.report.examples] == [f"{f}:2", f"{f}:4", f"{f}:5"]
    assert "timestamp" in ds.report.examples[1]
    with pytest.raises(DataError, match=r"Movies_and_TV\.jsonl:2: "):
        load_dataset("amazon", f, strict=True)


def test_amazon_folder_without_reviews(tmp_path: Path):
    shutil.copy(FIX / "amazon-2023" / "meta_Movies_and_TV.jsonl", tmp_path)
    with pytest.raises(DataError, match="no Amazon review files"):
        load_dataset("amazon", tmp_path)


# --------------------------------------------------------------------------- RecBole


def test_recbole_sequence_inter_expands_history_then_target():
    ds = load_dataset("recbole", FIX / "recbole-games", strict=True)
    check_tables(ds)
    assert ds.ordering is Ordering.ORDER and ds.name == "Games-6k"
    inter = ds.interactions
    assert inter["user"].nunique() == 8
    assert len(inter) == 15 + 10 + 13 + 32 + 5 + 8 + 21 + 17
    u0 = inter[inter["user"] == "0"].sort_values("order")
    assert u0["item"].tolist() == [str(i) for i in range(15)]  # 0..13 then target 14
    assert u0["order"].tolist() == list(range(15))
    assert inter["ts"].isna().all() and inter["rating"].isna().all()
    assert item(ds, "0")["title"] == "Fire Emblem: The Sacred Stones"
    assert item(ds, "14")["title"] != ""


def test_recbole_timestamped_inter_and_item_fields():
    ds = load_dataset("recbole", FIX / "recbole-ml" / "ml-tiny.inter", strict=True)
    check_tables(ds)
    assert ds.ordering is Ordering.TIMESTAMP
    assert len(ds.interactions) == 8
    assert ds.interactions["ts"].iloc[0] == 978300760.0 and ds.interactions["rating"].iloc[0] == 5.0
    nest = item(ds, "1193")
    assert nest["title"] == "One Flew Over the Cuckoo's Nest" and nest["year"] == 1975
    assert item(ds, "661")["genres"] == ["Animation", "Children's", "Musical"]
    assert "2355" in set(ds.items["item"])  # catalogue item without interactions


def test_recbole_malformed(tmp_path: Path):
    text = (FIX / "recbole-ml" / "ml-tiny.inter").read_text() + "4\t914\n4\t914\tfive\t978297068\n"
    (tmp_path / "x.inter").write_text(text)
    ds = load_dataset("recbole", tmp_path)
    assert ds.report.malformed == 2 and len(ds.interactions) == 8
    assert ds.report.examples[0].startswith(f"{tmp_path / 'x.inter'}:10: expected 4")
    assert ds.report.examples[1].startswith(f"{tmp_path / 'x.inter'}:11: ")
    with pytest.raises(DataError, match=r"x\.inter:10: "):
        load_dataset("recbole", tmp_path, strict=True)
    (tmp_path / "x.inter").write_text("user_id:token\titem_id:bogus\n1\t2\n")
    with pytest.raises(DataError, match="bad RecBole header"):
        load_dataset("recbole", tmp_path)


# --------------------------------------------------------------------------- SASRec sequences


def test_sasrec_sequences():
    ds = load_dataset("sasrec", FIX / "sasrec" / "Video.txt", strict=True)
    check_tables(ds)
    assert ds.ordering is Ordering.ORDER and ds.name == "Video"
    inter = ds.interactions
    assert len(inter) == 48
    assert inter.iloc[0][["user", "item", "order"]].tolist() == ["1", "6393", 0]
    assert inter.iloc[1][["user", "item", "order"]].tolist() == ["1", "13504", 1]
    assert inter["ts"].isna().all()
    assert (ds.items["title"] == "").all() and len(ds.items) == inter["item"].nunique()


def test_sasrec_malformed(tmp_path: Path):
    f = tmp_path / "seq.txt"
    f.write_text("1 10\n1 11 12\n2 10\n\n2\n")
    ds = load_dataset("sasrec", tmp_path)
    assert len(ds.interactions) == 2 and ds.report.malformed == 2
    assert ds.report.examples == [f"{f}:2: expected 'user item', got 3 fields", f"{f}:5: expected 'user item', got 1 fields"]
    with pytest.raises(DataError, match=r"seq\.txt:2: "):
        load_dataset("sasrec", f, strict=True)


# --------------------------------------------------------------------------- KGAT


def test_kgat_train_only():
    ds = load_dataset("kgat", FIX / "kgat", strict=True)
    check_tables(ds)
    assert ds.ordering is Ordering.NONE
    inter = ds.interactions
    assert len(inter) == 32 + 4 + 16 + 15
    assert inter[inter["user"] == "1"]["item"].tolist() == ["32", "33", "34", "35"]
    zero = item(ds, "0")
    assert zero["title"] == "" and zero["description"] == "0553092626"


def test_kgat_with_test_pairs():
    ds, test = load_kgat_with_test(FIX / "kgat", strict=True)
    assert len(ds.interactions) == 67
    assert tuple(test.columns) == INTERACTION_COLUMNS
    assert len(test) == 8 + 1 + 5 + 4
    assert test[test["user"] == "1"]["item"].tolist() == ["2825"]
    assert set(test["item"]) <= set(ds.items["item"])
    assert item(ds, "2825")["description"] != ""


def test_kgat_malformed(tmp_path: Path):
    shutil.copytree(FIX / "kgat", tmp_path / "k")
    with (tmp_path / "k" / "train.txt").open("a") as fh:
        fh.write("7 1 x2\n8\n")  # line 5 malformed; line 6: a user without items is fine
    ds = load_dataset("kgat", tmp_path / "k")
    assert ds.report.malformed == 1 and ds.report.examples[0].startswith(f"{tmp_path / 'k' / 'train.txt'}:5:")
    with pytest.raises(DataError, match=r"train\.txt:5: non-integer"):
        load_dataset("kgat", tmp_path / "k", strict=True)


# --------------------------------------------------------------------------- registry


def test_unknown_kind_names_the_allowed_kinds():
    with pytest.raises(ConfigError) as e:
        load_dataset("netflix", FIX / "movielens")
    for kind in ("movielens", "amazon", "recbole", "sasrec", "kgat"):
        assert kind in str(e.value)
    assert set(KINDS) == {"movielens", "amazon", "recbole", "sasrec", "kgat"}


def test_missing_path_names_the_path(tmp_path: Path):
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="nope"):
        load_dataset("movielens", missing)
    with pytest.raises(DataError, match="ratings.csv"):
        load_dataset("movielens", tmp_path)  # exists, but no ratings.csv inside


def test_progress_reports_lines(tmp_path: Path):
    f = tmp_path / "big.txt"
    f.write_text("".join(f"{i % 97} {i % 89}\n" for i in range(25_000)))
    calls: list[int] = []
    ds = load_dataset("sasrec", f, progress=calls.append)
    assert len(ds.interactions) == 25_000
    assert sum(calls) == 25_000 and calls[0] == 10_000 and len(calls) == 3


# --------------------------------------------------------------------------- the real shared data


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, rel, rows, users, ordering",
    [
        ("movielens", "movielens-latest-small", 100_836, 610, Ordering.TIMESTAMP),
        ("amazon", "amazon-2023-movies-sample", 300, 55, Ordering.TIMESTAMP),
        ("recbole", "amazon-games-2018", 440_264, 50_546, Ordering.ORDER),
        ("sasrec", "amazon-video-2014/Video.txt", 287_107, 31_013, Ordering.ORDER),
        ("kgat", "amazon-book-kgat", 652_514, 70_679, Ordering.NONE),
    ],
)
def test_shared_data(kind, rel, rows, users, ordering):
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"{path} not present")
    ds = load_dataset(kind, path)
    check_tables(ds)
    assert ds.ordering is ordering
    assert len(ds.interactions) == rows and ds.interactions["user"].nunique() == users
    if kind == "movielens":
        # the shared ratings.csv carries one rating of a movie missing from movies.csv
        assert ds.report.malformed == 1 and "999999" in ds.report.examples[0]
        assert len(ds.items) == 9742
    else:
        assert ds.report.malformed == 0
    if kind == "kgat":
        _, test = load_kgat_with_test(path)
        assert len(test) == 193_920


def test_amazon_meta_malformed_and_unreviewed_lines(tmp_path: Path):
    shutil.copy(FIX / "amazon-2014" / "reviews_Toys_and_Games_5.json", tmp_path)
    meta = (FIX / "amazon-2014" / "meta_Toys_and_Games.json").read_text()
    meta += "{'asin': 'B00004TFT1', 'title': 'broken\n"  # line 4: a reviewed product, unparsable
    meta += "{'asin': 'NOBODY', 'title': 'never reviewed, never parsed'\n"  # line 5: skipped unparsed
    (tmp_path / "meta_Toys_and_Games.json").write_text(meta)
    ds = load_dataset("amazon", tmp_path)
    assert ds.report.malformed == 1
    assert ds.report.examples[0].startswith(f"{tmp_path / 'meta_Toys_and_Games.json'}:4: ")
    assert item(ds, "0439893577")["brand"] == "Scholastic"
