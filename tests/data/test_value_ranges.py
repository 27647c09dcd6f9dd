"""Values that do not fit their field stop with file, line and field: timestamps beyond int64 (which used
to wrap to the earliest possible time), and non-finite ratings shown as the user wrote them."""

from __future__ import annotations

import pytest

from gatrec.data.prepare import prepare_dataset
from gatrec.errors import DataError


@pytest.mark.parametrize("stamp", ["99999999999999999999", "18446744073709551615", "9007199254740993",
                                   "-99999999999999999999"])
def test_out_of_range_timestamp(tmp_path, make_folder, make_rows, stamp):
    rows = make_rows()
    rows[3] = (rows[3][0], rows[3][1], stamp)
    folder = make_folder(tmp_path / "raw", rows)
    with pytest.raises(DataError, match=r"interactions\.csv:5, field 'timestamp': value .* is not an integer in range"):
        prepare_dataset(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_all_timestamps_huge_parsed_as_integers(tmp_path, make_folder, make_rows):
    """A column the CSV parser types as uint64 (every value a big integer) is range-checked too."""
    rows = [(u, i, 2**63 + t) for u, i, t in make_rows()]
    folder = make_folder(tmp_path / "raw", rows)
    with pytest.raises(DataError, match=r"interactions\.csv:2, field 'timestamp'.*not an integer in range"):
        prepare_dataset(folder, tmp_path / "out")


def test_inf_rating_says_inf(tmp_path, make_folder, make_rows):
    rows = [(u, i, t, 5) for u, i, t in make_rows()]
    rows[1] = (*rows[1][:3], "inf")
    folder = make_folder(tmp_path / "raw", rows, header="user_id,item_id,timestamp,rating")
    with pytest.raises(DataError) as err:
        prepare_dataset(folder, tmp_path / "out")
    msg = str(err.value)
    assert "interactions.csv:3, field 'rating': value inf is not a finite number" in msg, msg
    assert "np.float64" not in msg


def test_large_but_valid_timestamps_pass(tmp_path, make_folder, make_rows):
    rows = [(u, i, 1_700_000_000_000 + t) for u, i, t in make_rows()]  # epoch milliseconds
    out = prepare_dataset(make_folder(tmp_path / "raw", rows), tmp_path / "out")
    assert out.is_dir()
