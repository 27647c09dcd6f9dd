"""MovieLens 100K and 1M readers on tiny files in the published layouts."""

from __future__ import annotations

import pytest

from gatrec.data.readers import detect_format, read_raw
from gatrec.errors import DataError


def test_movielens_100k(tmp_path):
    (tmp_path / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t5\t881251000\n")
    flags_242 = "|".join(["0"] * 5 + ["1"] + ["0"] * 13)  # Comedy
    flags_302 = "|".join(["0", "0", "0", "0", "0", "0", "1", "0", "0", "0", "1"] + ["0"] * 5 + ["1", "0", "0"])
    (tmp_path / "u.item").write_bytes(
        f"242|Kolya (1996)|24-Jan-1997||http://us.imdb.com/M/title-exact?Kolya%20(1996)|{flags_242}\n"
        f"302|L.A. Confidential (1997)|01-Jan-1997||http://x|{flags_302}\n".encode("latin-1")
        + "9|Café (1999)|01-Jan-1999||http://x|".encode("latin-1") + "|".join(["1"] + ["0"] * 18).encode() + b"\n")
    assert detect_format(tmp_path) == "movielens"
    raw = read_raw(tmp_path)
    df = raw.interactions
    assert df["user_id"].tolist() == ["196", "186", "196"] and df["item_id"].tolist() == ["242", "302", "302"]
    assert df["rating"].tolist() == [3.0, 3.0, 5.0] and df["timestamp"].tolist()[0] == 881250949
    items = raw.items.set_index("item_id")
    assert items.loc["242", "title"] == "Kolya (1996)" and items.loc["242", "categories"] == "Comedy"
    assert items.loc["302", "categories"] == "Crime, Film-Noir, Thriller"
    assert items.loc["9", "title"] == "Café (1999)" and items.loc["9", "categories"] == "unknown"


def test_movielens_1m(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    (tmp_path / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::"
        "Animation|Children's|Musical\n".encode("latin-1"))
    raw = read_raw(tmp_path / "ratings.dat")
    assert raw.format == "movielens"
    df = raw.interactions
    assert df["user_id"].tolist() == ["1", "1", "2"] and df["item_id"].tolist() == ["1193", "661", "1193"]
    assert df["rating"].tolist() == [5.0, 3.0, 4.0] and df["timestamp"].tolist()[2] == 978298413
    items = raw.items.set_index("item_id")
    assert items.loc["661", "categories"] == "Animation, Children's, Musical"
    assert items.loc["1193", "title"] == "One Flew Over the Cuckoo's Nest (1975)"


def test_movielens_bad_rating_names_line(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\n1::661::great::978302109\n")
    with pytest.raises(DataError, match=r"ratings\.dat:2, field 'rating'"):
        read_raw(tmp_path, "movielens")


def test_movielens_wrong_separator(tmp_path):
    (tmp_path / "u.data").write_text("196 242 3 881250949\n")
    with pytest.raises(DataError, match=r"u\.data: malformed ratings file"):
        read_raw(tmp_path)


def test_movielens_empty_file(tmp_path):
    (tmp_path / "u.data").write_text("")
    with pytest.raises(DataError, match=r"u\.data: empty file"):
        read_raw(tmp_path)
