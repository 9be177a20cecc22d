"""bench_quality --style-loss (benchmarks/_style_losses.py): the table marks the lowest value of each measure per pair
and counts the pairs each statistic wins, from stored records (hand-made here, so every number is known)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _style_losses as B  # noqa: E402


def rec(content, gram, swd, colour, seconds=10.0):
    return {"content": content, "gram": gram, "swd": swd, "colour": colour, "seconds": seconds}


def test_table_bolds_the_lowest_and_counts_wins():
    pairs = [("chelsea", "starry_night"), ("rocket", "durer_lion")]
    records = {B.key("photo", *pairs[0], 64): rec(0.0, 0.9, 0.5, 20.0),
               B.key("gram", *pairs[0], 64): rec(0.4, 0.05, 0.10, 6.0), B.key("swd", *pairs[0], 64): rec(0.5, 0.08, 0.04, 4.0),
               B.key("gram", *pairs[1], 64): rec(0.3, 0.07, 0.20, 9.0), B.key("swd", *pairs[1], 64): rec(0.2, 0.06, 0.30, 3.0)}
    text = B.table(records, ["gram", "swd"], pairs, 64)
    assert "| chelsea × starry_night | `gram` | 0.400 | **0.050** | 0.100 | 6.0 | 10 |" in text
    assert "| chelsea × starry_night | `swd` | 0.500 | 0.080 | **0.040** | **4.0** | 10 |" in text
    assert "| chelsea × starry_night | *(the photo)* | 0.000 | 0.900 | 0.500 | 20.0 | |" in text
    assert "- Gram distance: `gram` 1, `swd` 1" in text
    assert "- sliced Wasserstein distance: `gram` 1, `swd` 1" in text
    assert "- colour distance: `gram` 0, `swd` 2" in text
    assert "- content distance (closest to the photo): `gram` 1, `swd` 1" in text
    assert "Medians over the 2 complete pairs" in text and "| `gram` | 2 | 0.350 | 0.060 | 0.150 | 7.500 | 10 |" in text
    assert "2 of 2 pairs complete" in text


def test_an_incomplete_pair_is_listed_but_not_summarized():
    pairs = [("chelsea", "starry_night"), ("rocket", "durer_lion")]
    records = {B.key("gram", *pairs[0], 64): rec(0.4, 0.05, 0.10, 6.0), B.key("swd", *pairs[0], 64): rec(0.5, 0.08, 0.04, 4.0),
               B.key("gram", *pairs[1], 64): rec(0.9, 0.9, 0.9, 9.0)}
    text = B.table(records, ["gram", "swd"], pairs, 64)
    assert "Medians over the 1 complete pairs" in text and "1 of 2 pairs complete" in text
    assert "| `gram` | 1 | 0.400 | 0.050 | 0.100 | 6.000 | 10 |" in text
    assert "| rocket × durer_lion | `gram` | 0.900 |" in text
