"""Bank model and the ThreatExchange/HMA file formats: round trips and clear errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warden.core import Action
from warden.detectors.hashing.banks import (
    Bank,
    BankEntry,
    BankFormatError,
    detect_format,
    export_bank,
    parse_bank_file,
    without_ids,
)

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"  # ThreatExchange's sample
PDQ2 = "e64cc9d91c623882f8d1f1d9a398e78c9f199b3bd83924f2b7e11e0bf861b064"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
BANK = Bank(name="known_bad", category="violence/graphic", action="escalate", report=True, description="test bank")


def _entries() -> list[BankEntry]:
    return [
        BankEntry(signal_type="pdq", signal=PDQ, source="ncmec", category="violence/graphic", added_by="alice",
                  added_at=datetime(2026, 11, 1, 12, 30, 15, 123456, tzinfo=UTC), content_id="case-1",
                  note='quoted "note", with comma'),
        BankEntry(signal_type="pdq", signal=PDQ2, added_by="bob", added_at=datetime(2026, 1, 2, tzinfo=UTC)),
        BankEntry(signal_type="md5", signal=MD5, source="internal", note="ünïcødé ✓\nsecond line"),
    ]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_round_trip_keeps_every_field(fmt: str) -> None:
    text = export_bank(BANK, _entries(), fmt=fmt)
    parsed = parse_bank_file(text, fmt=fmt)
    assert list(parsed.entries) == _entries()
    assert parsed.bank == (BANK if fmt == "json" else None)
    assert detect_format(f"x.{fmt}", text) == fmt


def test_te_round_trip_keeps_the_hashes() -> None:
    text = export_bank(BANK, _entries(), fmt="te")
    assert text.splitlines()[0] == f"pdq {PDQ}"
    parsed = parse_bank_file(text, fmt="te")
    assert [(e.signal_type, e.signal) for e in parsed.entries] == [(e.signal_type, e.signal) for e in _entries()]


text_field = st.one_of(st.none(), st.text(alphabet=st.characters(blacklist_categories=["Cs"],
                                                                  blacklist_characters="\x00"), max_size=40))


@settings(max_examples=60, deadline=None)
@given(source=text_field, note=text_field, content_id=text_field, fmt=st.sampled_from(["csv", "json"]))
def test_round_trip_any_text(source, note, content_id, fmt) -> None:
    entry = BankEntry(signal_type="pdq", signal=PDQ, source=source, note=note, content_id=content_id)
    assert list(parse_bank_file(export_bank(BANK, [entry], fmt=fmt), fmt=fmt).entries) == [entry]


def test_imports_threatexchange_and_hma_shapes() -> None:
    te = f"# comment\npdq {PDQ}\n\nvideo_md5 {MD5.upper()}\n"
    assert [(e.signal_type, e.signal) for e in parse_bank_file(te, fmt="te").entries] == [("pdq", PDQ), ("md5", MD5)]
    # one hash per line with the type given by the caller (FileCollaborationConfig.signal_type)
    assert parse_bank_file(f"{PDQ}\n{PDQ2}\n", fmt="te", default_signal_type="pdq").entries[1].signal == PDQ2
    csv_te = f"indicator_type,indicator,added_on,tags\nHASH_PDQ,{PDQ},1700000000,a b\nHASH_MD5,{MD5},,\n"
    parsed = parse_bank_file(csv_te, fmt="csv")
    assert [e.signal_type for e in parsed.entries] == ["pdq", "md5"]
    no_type = f"hash,source\n{PDQ},te\n"
    assert parse_bank_file(no_type, fmt="csv", default_signal_type="pdq").entries[0].source == "te"
    hma = {"contents": [{"signals": {"pdq": PDQ, "video_md5": MD5},
                         "metadata": {"content_id": "c1", "content_uri": "https://example.invalid/x",
                                      "json": {"source": "hma"}}}]}
    entries = parse_bank_file(json.dumps(hma), fmt="json").entries
    assert [(e.signal_type, e.content_id, e.source) for e in entries] == [("pdq", "c1", "hma"), ("md5", "c1", "hma")]
    assert parse_bank_file(json.dumps({"pdq": PDQ}), fmt="json").entries[0].signal == PDQ  # HMA add-signal body
    flat = [{"signal_type": "pdq", "signal": PDQ, "added_at": "2026-11-22T03:00:00Z"}]
    assert parse_bank_file(json.dumps(flat), fmt="json").entries[0].added_at == datetime(2026, 11, 22, 3,
                                                                                         tzinfo=UTC)


def test_defaults_fill_missing_provenance() -> None:
    entries = parse_bank_file(f"pdq {PDQ}\n", fmt="te", defaults={"added_by": "cli:x", "source": "s"}).entries
    assert (entries[0].added_by, entries[0].source) == ("cli:x", "s")


def test_bad_rows_fail_the_whole_file_with_their_lines() -> None:
    text = f"signal_type,signal\npdq,{PDQ}\npdq,xyz\nsha1,{MD5}\nmd5,{MD5}\n"
    with pytest.raises(BankFormatError) as exc:
        parse_bank_file(text, fmt="csv")
    assert str(exc.value).startswith("2 invalid row(s); line 3: invalid PDQ hash 'xyz'")
    assert exc.value.errors[1].startswith("line 4: unknown signal type 'sha1'")


@pytest.mark.parametrize(("text", "fmt", "message"), [
    ("a,b\n1,2\n", "csv", "header row"),
    (f"signal\n{PDQ}\n", "csv", "no 'signal_type' column"),
    ("{not json", "json", "not valid JSON"),
    ('{"contents": 5}', "json", "'contents' must be an array"),
    ('{"contents": [{"signals": 5}]}', "json", "contents\\[0\\]"),
    ('{"bank": {"name": "x y", "category": "hate"}, "contents": []}', "json", "bank: invalid bank name"),
    (f"pdq {PDQ}", "xml", "unknown bank file format"),
    ("just-one-token", "te", "line 1: missing signal|unknown signal type"),
])
def test_unreadable_files_say_why(text: str, fmt: str, message: str) -> None:
    with pytest.raises(BankFormatError, match=message):
        parse_bank_file(text, fmt=fmt)


def test_bank_validation() -> None:
    assert Bank(name="a.b-c_1", category="sexual/minors").action is Action.REMOVE
    with pytest.raises(ValueError, match="invalid bank name"):
        Bank(name="-bad", category="hate")
    with pytest.raises(ValueError, match="invalid category"):
        Bank(name="ok", category="Not A Category")
    with pytest.raises(ValueError, match="invalid action 'report'"):
        Bank(name="ok", category="hate", action="report")
    with pytest.raises(ValueError, match="NUL"):
        BankEntry(signal_type="pdq", signal=PDQ, note="a\x00b")
    with pytest.raises(ValueError, match="longer than 256"):
        BankEntry(signal_type="pdq", signal=PDQ, source="x" * 257)
    assert without_ids([BankEntry(signal_type="md5", signal=MD5, id=4)])[0].id is None
