"""The spec's labels.json / classes.json: reading, checking, writing, and writing a label set into a dataset root."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from conftest import write_text
from hypothesis import given, settings
from hypothesis import strategies as st

from herostore.errors import LabelError, LabelFileExistsError
from herostore.labels import (
    Label,
    check_labels_against_classes,
    derive_classes,
    load_label_set,
    read_classes,
    read_labels,
    write_classes,
    write_label_set,
    write_labels,
)

# ------------------------------------------------------------------------------------------ labels.json


SPEC_EXAMPLE = """[
  {"video_id": "video_001", "emotion": "happy", "sentiment": "positive", "text": "I am so happy today."},
  {"video_id": "video_002", "emotion": "sad",   "sentiment": "negative", "text": "I feel terrible."}
]"""


def test_read_spec_example(tmp_path):
    labels = read_labels(write_text(tmp_path / "labels.json", SPEC_EXAMPLE))
    assert labels == [
        Label("video_001", "happy", "positive", "I am so happy today."),
        Label("video_002", "sad", "negative", "I feel terrible."),
    ]


def test_optional_keys_numeric_sentiment_and_extra_keys(tmp_path):
    path = write_text(tmp_path / "labels.json", json.dumps([
        {"video_id": "a", "emotion": "neutral"},
        {"video_id": "b", "emotion": "happiness", "sentiment": 1.5, "text": None, "speaker": "x"},
        {"video_id": "c", "emotion": "sad", "sentiment": -2},
    ]))
    assert read_labels(path) == [Label("a", "neutral"), Label("b", "happiness", 1.5), Label("c", "sad", -2)]


def test_write_labels_format_and_round_trip(tmp_path):
    labels = [Label("v1", "高兴", "positive", "我很高兴"), Label("v2", "sad", -0.5), Label("v3", "neutral")]
    path = tmp_path / "labels.json"
    write_labels(path, labels)
    text = path.read_text("utf-8")
    assert "我很高兴" in text and '\n {\n  "video_id": "v1",' in text and text.endswith("]\n")
    assert json.loads(text)[2] == {"video_id": "v3", "emotion": "neutral"}
    assert read_labels(path) == labels
    assert [p.name for p in tmp_path.iterdir()] == ["labels.json"]  # no temp file left behind


label_values = st.text(min_size=1).filter(str.strip)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.builds(Label, label_values, label_values,
                          st.none() | label_values | st.floats(allow_nan=False, allow_infinity=False),
                          st.none() | st.text()),
                unique_by=lambda x: x.video_id))
def test_write_read_round_trip(labels):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "labels.json"
        write_labels(path, labels)
        assert read_labels(path) == labels


@pytest.mark.parametrize("content, message", [
    ("", r"labels\.json: empty file, expected a JSON array of label objects"),
    ('[{"video_id": "a", "emotion": "happy"},\n {"video_id": "b" "emotion": "sad"}]',
     r"labels\.json: malformed JSON at line 2, column 19: Expecting ',' delimiter"),
    ('{"a": "happy"}', r"expected a JSON array of label objects at the top level, found an object"),
    ('[["a", "happy"]]', r"entry \[0\]: expected an object with 'video_id' and 'emotion', found list"),
    ('[{"emotion": "happy"}]', r"entry \[0\]: missing key 'video_id' \(expected a non-empty string\)"),
    ('[{"video_id": "a"}]', r"entry \[0\]: missing key 'emotion'"),
    ('[{"video_id": "", "emotion": "happy"}]', r"entry \[0\]: key 'video_id': expected a non-empty string, found str ''"),
    ('[{"video_id": 7, "emotion": "happy"}]', r"entry \[0\]: key 'video_id': expected a non-empty string, found int 7"),
    ('[{"video_id": "a", "emotion": "x"}, {"video_id": "b", "emotion": 3}]',
     r"entry \[1\] \(video_id 'b'\): key 'emotion': expected a non-empty string, found int 3"),
    ('[{"video_id": "a", "emotion": null}]', r"key 'emotion': expected a non-empty string, found null"),
    ('[{"video_id": "a", "emotion": "x", "sentiment": true}]',
     r"\(video_id 'a'\): key 'sentiment': expected a string, a finite number or null, found bool True"),
    ('[{"video_id": "a", "emotion": "x", "sentiment": NaN}]', r"key 'sentiment': .* found float nan"),
    ('[{"video_id": "a", "emotion": "x", "text": ["hi"]}]', r"key 'text': expected a string or null, found list"),
    ('[{"video_id": "a", "emotion": "x"}, {"video_id": "b", "emotion": "x"}, {"video_id": "a", "emotion": "y"}]',
     r"labels\.json: duplicate video_id 'a' at entry \[0\] and entry \[2\]"),
])
def test_read_labels_rejects(tmp_path, content, message):
    path = write_text(tmp_path / "labels.json", content)
    with pytest.raises(LabelError, match=message):
        read_labels(path)


def test_read_labels_missing_file_and_bad_encoding(tmp_path):
    with pytest.raises(LabelError, match=r"nope[/\\]labels\.json: no such labels file"):
        read_labels(tmp_path / "nope" / "labels.json")
    bad = tmp_path / "latin1.json"
    bad.write_bytes('[{"video_id": "é", "emotion": "x"}]'.encode("latin-1"))
    with pytest.raises(LabelError, match=r"latin1\.json: not UTF-8 \(byte 0xe9 at offset 15\)"):
        read_labels(bad)


def test_read_labels_accepts_bom(tmp_path):
    path = write_text(tmp_path / "labels.json", '\ufeff[{"video_id": "a", "emotion": "happy"}]')
    assert read_labels(path) == [Label("a", "happy")]


def test_write_labels_rejects_bad_labels(tmp_path):
    with pytest.raises(LabelError, match=r"labels\[1\] \(video_id 'b'\): key 'emotion': expected a non-empty string"):
        write_labels(tmp_path / "labels.json", [Label("a", "x"), Label("b", "")])
    with pytest.raises(LabelError, match=r"duplicate video_id 'a' at labels\[0\] and labels\[1\]"):
        write_labels(tmp_path / "labels.json", [Label("a", "x"), Label("a", "y")])
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------- classes.json


def test_classes_round_trip_and_derive(tmp_path):
    write_classes(tmp_path / "classes.json", ["neutral", "愤怒", "happy"])
    assert read_classes(tmp_path / "classes.json") == ["neutral", "愤怒", "happy"]
    assert derive_classes([Label("a", "sad"), Label("b", "happy"), Label("c", "sad")]) == ["happy", "sad"]


@pytest.mark.parametrize("content, message", [
    ("", r"classes\.json: empty file, expected a JSON array of class names"),
    ('["a", "b",]', r"classes\.json: malformed JSON at line 1, column 11"),
    ('{"happy": 0}', r"expected a JSON array of class names at the top level, found an object"),
    ("[]", r"no classes listed, expected at least one class name"),
    ('["happy", ""]', r"entry \[1\]: expected a non-empty string class name, found str ''"),
    ('["happy", 2]', r"entry \[1\]: expected a non-empty string class name, found int 2"),
    ('["happy", "sad", "happy"]', r"duplicate class 'happy' at entry \[0\] and entry \[2\]"),
])
def test_read_classes_rejects(tmp_path, content, message):
    with pytest.raises(LabelError, match=message):
        read_classes(write_text(tmp_path / "classes.json", content))


def test_check_labels_against_classes_lists_unknown_labels():
    labels = [Label("a", "happy"), Label("b", "joyful"), Label("c", "xx"), Label("d", "joyful")]
    with pytest.raises(LabelError, match=r"^ann: 3 label\(s\) not in the classes: 'joyful' \(video ids 'b', 'd'\); "
                                         r"'xx' \(video ids 'c'\); valid classes: neutral, happy$"):
        check_labels_against_classes(labels, ["neutral", "happy"], "ann")
    check_labels_against_classes(labels[:1], ["neutral", "happy"], "ann")


def test_check_labels_against_classes_shortens_long_id_lists():
    labels = [Label(f"v{i}", "joyful") for i in range(8)]
    with pytest.raises(LabelError, match=r"'v3', 'v4' and 3 more\)"):
        check_labels_against_classes(labels, ["happy"], "ann")


def test_load_label_set_class_sources(tmp_path):
    write_text(tmp_path / "labels.json", '[{"video_id": "a", "emotion": "sad"}, {"video_id": "b", "emotion": "happy"}]')
    assert load_label_set(tmp_path / "labels.json") == ([Label("a", "sad"), Label("b", "happy")], ["happy", "sad"])
    write_text(tmp_path / "classes.json", '["neutral", "happy", "sad"]')
    assert load_label_set(tmp_path / "labels.json")[1] == ["neutral", "happy", "sad"]
    write_text(tmp_path / "other.json", '["sad", "happy"]')
    assert load_label_set(tmp_path / "labels.json", tmp_path / "other.json")[1] == ["sad", "happy"]
    write_text(tmp_path / "classes.json", '["neutral", "happy"]')
    with pytest.raises(LabelError, match=r"labels\.json \(classes from .*classes\.json\): 1 label\(s\) not in the "
                                         r"classes: 'sad' \(video ids 'a'\); valid classes: neutral, happy"):
        load_label_set(tmp_path / "labels.json")


# ------------------------------------------------------------------------------------------- label sets


LABEL_SET = [Label("a", "happy", 1.0, "hi"), Label("b", "sad"), Label("c", "happy"), Label("d", "neutral")]
CLASS_LIST = ["neutral", "happy", "sad"]


def test_write_label_set_creates_the_root_and_writes_both(tmp_path):
    root = tmp_path / "new" / "ds"
    paths = write_label_set(root, LABEL_SET, CLASS_LIST)
    assert paths == (root / "labels.json", root / "classes.json")
    assert load_label_set(root / "labels.json") == (LABEL_SET, CLASS_LIST)
    assert sorted(p.name for p in root.iterdir()) == ["classes.json", "labels.json"]  # no temp file left behind


def test_write_label_set_keeps_a_file_with_the_same_content(tmp_path):
    # Edited by hand: other formatting, an extra key; the same labels. Nothing to replace, so nothing changes.
    entries = [label.to_dict() for label in LABEL_SET]
    entries[1]["speaker"] = "M"
    labels_json = write_text(tmp_path / "labels.json", json.dumps(entries, indent=4))
    before = labels_json.read_bytes()
    write_label_set(tmp_path, LABEL_SET, CLASS_LIST)
    assert labels_json.read_bytes() == before
    assert read_classes(tmp_path / "classes.json") == CLASS_LIST
    write_label_set(tmp_path, LABEL_SET, CLASS_LIST)  # both the same now


def test_write_label_set_refuses_a_differing_file_and_says_how(tmp_path):
    write_label_set(tmp_path, LABEL_SET, CLASS_LIST)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    new = [Label("a", "happy", 2.0, "hi"), Label("b", "happy"), Label("c", "happy", None, "new"), Label("e", "sad")]
    with pytest.raises(LabelFileExistsError, match=(
            r"^\S*labels\.json exists with 4 labels, the new set has 4: 1 ids only in the file \('d'\), 1 ids only "
            r"in the new set \('e'\), 1 ids with another emotion \('b'\), 1 ids with another sentiment \('a'\), "
            r"1 ids with another text \('c'\); not replaced$")):
        write_label_set(tmp_path, new, CLASS_LIST)
    with pytest.raises(LabelFileExistsError, match=r"labels\.json exists with 4 labels, the new set has 4: the same "
                                                   r"labels in another order; not replaced$"):
        write_label_set(tmp_path, LABEL_SET[::-1], CLASS_LIST)
    with pytest.raises(LabelFileExistsError, match=(
            r"^\S*classes\.json exists with 3 classes, the new list has 4: 1 only in the new list \('angry'\); "
            r"\S*labels\.json exists with 4 labels, the new set has 3: 1 ids only in the file \('d'\); not replaced$")):
        write_label_set(tmp_path, LABEL_SET[:3], [*CLASS_LIST, "angry"])
    with pytest.raises(LabelFileExistsError, match=r"classes\.json exists with 3 classes, the new list has 3: the same "
                                                   r"classes in another order \(sad, happy, neutral\), which changes "
                                                   r"the indexes; not replaced$"):
        write_label_set(tmp_path, LABEL_SET, CLASS_LIST[::-1])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_write_label_set_refuses_an_unreadable_file_and_writes_nothing(tmp_path):
    write_text(tmp_path / "labels.json", '[{"video_id": "a",}]')
    with pytest.raises(LabelError, match=r"labels\.json exists and cannot be compared: malformed JSON at line 1, "
                                         r"column 19: .*; not replaced$"):
        write_label_set(tmp_path, LABEL_SET, CLASS_LIST)
    assert not (tmp_path / "classes.json").exists()  # nothing is written unless both files can be


def test_write_label_set_overwrite_replaces(tmp_path):
    write_label_set(tmp_path, LABEL_SET, CLASS_LIST)
    write_label_set(tmp_path, LABEL_SET[:2], ["sad", "happy"], overwrite=True)
    assert load_label_set(tmp_path / "labels.json") == (LABEL_SET[:2], ["sad", "happy"])


def test_write_label_set_checks_its_input_before_writing(tmp_path):
    with pytest.raises(LabelError, match=r"ds[/\\]labels\.json \(classes for .*classes\.json\): 1 label\(s\) not in "
                                         r"the classes: 'neutral' \(video ids 'd'\)"):
        write_label_set(tmp_path / "ds", LABEL_SET, ["happy", "sad"])
    with pytest.raises(LabelError, match=r"ds[/\\]classes\.json: duplicate class 'sad' at classes\[1\] and "
                                         r"classes\[3\]"):
        write_label_set(tmp_path / "ds", LABEL_SET, ["happy", "sad", "neutral", "sad"])
    with pytest.raises(LabelError, match=r"ds[/\\]labels\.json: duplicate video_id 'a' at labels\[0\] and "
                                         r"labels\[1\]"):
        write_label_set(tmp_path / "ds", [Label("a", "sad"), Label("a", "happy")], CLASS_LIST)
    assert not (tmp_path / "ds").exists()


def test_write_label_set_file_in_the_way(tmp_path):
    afile = write_text(tmp_path / "afile", "not a folder")
    with pytest.raises(LabelError, match=r"afile: exists and is not a folder; expected a dataset root folder"):
        write_label_set(afile, LABEL_SET, CLASS_LIST)
    with pytest.raises(LabelError, match=r"afile[/\\]sub: cannot create the dataset root: \S*afile is a file, not a "
                                         r"folder$"):
        write_label_set(afile / "sub", LABEL_SET, CLASS_LIST)
    assert afile.read_text() == "not a folder"
