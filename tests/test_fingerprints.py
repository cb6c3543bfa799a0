"""What a rerun must redo: month digests of a transaction file and the months they select."""

from __future__ import annotations

from pathlib import Path

import pytest

from ads_assets.lib.berka.formats import SourceFile, SourceFormat
from ads_assets.lib.fingerprints import (
    LABELS,
    UNDATED,
    Fingerprint,
    label_digests,
    month_digests,
    months_to_run,
    with_labels,
)

HEADER = '"trans_id";"account_id";"date";"type";"operation";"amount";"balance";"k_symbol";"bank";"account"\n'
LINES = [
    '1;1;960105;"PRIJEM";"VKLAD";300.00;300.00;"";;\n',
    '2;1;960130;"VYDAJ";"VYBER";100.00;200.00;"";;\n',
    '3;2;960203;"PRIJEM";"VKLAD";500.00;500.00;"";;\n',
    '4;2;960317;"VYDAJ";"VYBER";50.00;450.00;"";;\n',
]
MONTHS = ["1996-01", "1996-02", "1996-03"]


def trans_file(folder: Path, lines: list[str]) -> SourceFile:
    path = folder / "trans.asc"
    path.write_text(HEADER + "".join(lines))
    return SourceFile("trans", str(path), SourceFormat.PKDD99)


def fingerprint(months: dict[str, str], trans: str = "t1", account: str = "a1", settings: str = "s1") -> Fingerprint:
    return Fingerprint(settings=settings, files={"account": account, "trans": trans}, months=months)


def test_a_changed_line_changes_only_its_month(tmp_path: Path) -> None:
    before = month_digests(trans_file(tmp_path, LINES))
    assert sorted(before) == MONTHS
    changed = LINES.copy()
    changed[2] = changed[2].replace("500.00;500.00", "501.00;501.00")
    after = month_digests(trans_file(tmp_path, changed))
    assert [month for month in MONTHS if before[month] != after[month]] == ["1996-02"]


def test_an_unreadable_date_counts_as_undated(tmp_path: Path) -> None:
    digests = month_digests(trans_file(tmp_path, [*LINES, '5;2;961399;"VYDAJ";"VYBER";1.00;449.00;"";;\n']))
    assert sorted(digests) == [*MONTHS, UNDATED]


def test_fin_files_are_read_by_their_shifted_dates(tmp_path: Path) -> None:
    path = tmp_path / "fin_trans.tsv"
    path.write_text("1\t1\t2016-01-05\t300.00\t300.00\tC\tCIC\t\t\t\n2\t1\t2016-02-07\t100.00\t200.00\tD\tVYB\t\t\t\n")
    assert sorted(month_digests(SourceFile("trans", str(path), SourceFormat.FIN))) == ["1996-01", "1996-02"]


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (fingerprint({"1996-01": "x", "1996-02": "y", "1996-03": "z"}), []),
        (fingerprint({"1996-01": "x", "1996-02": "Y", "1996-03": "z"}, trans="t2"), ["1996-02", "1996-03"]),
        (fingerprint({"1996-01": "x", "1996-02": "y", "1996-03": "Z"}, trans="t2"), ["1996-03"]),
        (fingerprint({"1996-01": "x", "1996-02": "y", "1996-03": "z"}, account="a2"), MONTHS),
        (fingerprint({"1996-01": "x", "1996-02": "y", "1996-03": "z"}, settings="s2"), MONTHS),
        (fingerprint({"1996-01": "x", "1996-02": "y", "1996-03": "z", UNDATED: "u"}, trans="t2"), MONTHS),
    ],
    ids=["nothing new", "february changed", "march changed", "an account changed", "code changed", "undated line"],
)
def test_months_to_run(current: Fingerprint, expected: list[str]) -> None:
    recorded = fingerprint({"1996-01": "x", "1996-02": "y", "1996-03": "z"})
    assert months_to_run(current, recorded, MONTHS) == expected


def test_a_new_month_alone_is_run() -> None:
    recorded = fingerprint({"1996-01": "x", "1996-02": "y"})
    current = fingerprint({"1996-01": "x", "1996-02": "y", "1996-03": "z"}, trans="t2")
    assert months_to_run(current, recorded, MONTHS) == ["1996-03"]


def test_without_a_recorded_run_every_month_is_run() -> None:
    assert months_to_run(fingerprint({}), None, MONTHS) == MONTHS


def test_a_new_label_reruns_from_its_transactions_month() -> None:
    transactions = {"1996-01": "x", "1996-02": "y", "1996-03": "z"}
    before = label_digests([("1996-01", 1, "confirmed")])
    after = label_digests([("1996-01", 1, "confirmed"), ("1996-02", 3, "false_positive")])
    recorded = Fingerprint("s1", {"trans": "t1", LABELS: "l1"}, with_labels(transactions, before))
    current = Fingerprint("s1", {"trans": "t1", LABELS: "l2"}, with_labels(transactions, after))
    assert months_to_run(current, recorded, MONTHS) == ["1996-02", "1996-03"]


def test_a_label_changed_from_confirmed_to_false_positive_changes_its_month_alone() -> None:
    before = label_digests([("1996-03", 4, "confirmed"), ("1996-01", 1, "confirmed")])
    after = label_digests([("1996-01", 1, "confirmed"), ("1996-03", 4, "false_positive")])
    assert before["1996-01"] == after["1996-01"]
    assert before["1996-03"] != after["1996-03"]
    assert set(before) == {"1996-01", "1996-03"}
