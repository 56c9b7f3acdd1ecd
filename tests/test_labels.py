"""labels.json / classes.json reading and writing, the dataset converters, and the ``labels`` subcommand."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herostore.cli import labels as cli_labels
from herostore.errors import HerostoreError, LabelError, LabelFileExistsError
from herostore.labels import (
    Label,
    check_labels_against_classes,
    convert,
    convert_iemocap,
    convert_meld,
    convert_mer,
    convert_mosei,
    derive_classes,
    load_label_set,
    read_classes,
    read_labels,
    write_classes,
    write_label_set,
    write_labels,
)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding, newline="")
    return path


# ------------------------------------------------------------------------------------------ labels.json


SPEC_EXAMPLE = """[
  {"video_id": "video_001", "emotion": "happy", "sentiment": "positive", "text": "I am so happy today."},
  {"video_id": "video_002", "emotion": "sad",   "sentiment": "negative", "text": "I feel terrible."}
]"""


def test_read_spec_example(tmp_path):
    labels = read_labels(write(tmp_path / "labels.json", SPEC_EXAMPLE))
    assert labels == [
        Label("video_001", "happy", "positive", "I am so happy today."),
        Label("video_002", "sad", "negative", "I feel terrible."),
    ]


def test_optional_keys_numeric_sentiment_and_extra_keys(tmp_path):
    path = write(tmp_path / "labels.json", json.dumps([
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
    path = write(tmp_path / "labels.json", content)
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
    path = write(tmp_path / "labels.json", '\ufeff[{"video_id": "a", "emotion": "happy"}]')
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
        read_classes(write(tmp_path / "classes.json", content))


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
    write(tmp_path / "labels.json", '[{"video_id": "a", "emotion": "sad"}, {"video_id": "b", "emotion": "happy"}]')
    assert load_label_set(tmp_path / "labels.json") == ([Label("a", "sad"), Label("b", "happy")], ["happy", "sad"])
    write(tmp_path / "classes.json", '["neutral", "happy", "sad"]')
    assert load_label_set(tmp_path / "labels.json")[1] == ["neutral", "happy", "sad"]
    write(tmp_path / "other.json", '["sad", "happy"]')
    assert load_label_set(tmp_path / "labels.json", tmp_path / "other.json")[1] == ["sad", "happy"]
    write(tmp_path / "classes.json", '["neutral", "happy"]')
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
    labels_json = write(tmp_path / "labels.json", json.dumps(entries, indent=4))
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
    write(tmp_path / "labels.json", '[{"video_id": "a",}]')
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
    afile = write(tmp_path / "afile", "not a folder")
    with pytest.raises(LabelError, match=r"afile: exists and is not a folder; expected a dataset root folder"):
        write_label_set(afile, LABEL_SET, CLASS_LIST)
    with pytest.raises(LabelError, match=r"afile[/\\]sub: cannot create the dataset root: \S*afile is a file, not a "
                                         r"folder$"):
        write_label_set(afile / "sub", LABEL_SET, CLASS_LIST)
    assert afile.read_text() == "not a folder"


# -------------------------------------------------------------------------------------------------- MER


MER2023 = """name,discrete,valence
sample_00000007,neutral,-10
sample_00000021,happy,2.5
sample_00000030,worried,-1
sample_00000044,surprise,0
"""


def test_mer2023(tmp_path):
    report: list[str] = []
    labels, classes = convert("mer", [write(tmp_path / "train-label.csv", MER2023)], report=report)
    assert labels == [
        Label("sample_00000007", "neutral"),
        Label("sample_00000021", "happy", 2.5),
        Label("sample_00000030", "worried", -1.0),
        Label("sample_00000044", "surprise", 0.0),
    ]
    assert classes == ["neutral", "angry", "happy", "sad", "worried", "surprise"]
    assert report == []


def test_mer2024_with_transcription(tmp_path):
    disdim = write(tmp_path / "label-disdim.csv", "name,discrete,valence\nsamplenew3_00000001,angry,-3.2\n"
                                                  "samplenew3_00000002,sad,-10\nsamplenew3_00000003,contempt,1\n")
    trans = write(tmp_path / "label-transcription.csv",
                  'name,chinese,english\n'
                  'samplenew3_00000001,"你说什么，我不听！","What did you say, I\'m not listening!"\n'
                  'samplenew3_00000002,,\n'
                  'samplenew3_00009999,"多余","extra"\n')
    # 'contempt' is not a MER class: an error naming the file, line and label, unless asked for.
    with pytest.raises(LabelError, match=r"label-disdim\.csv: line 4 \(name 'samplenew3_00000003'\): column "
                                         r"'discrete': label 'contempt' is not one of the MER classes \(neutral, "
                                         r"angry, happy, sad, worried, surprise\); correct it, or pass "
                                         r"allow_extra_classes=True \(--extra-classes\)"):
        convert("mer", [disdim, trans])
    report: list[str] = []
    labels, classes = convert("mer", [disdim, trans], report=report, allow_extra_classes=True)
    assert labels == [
        Label("samplenew3_00000001", "angry", -3.2, "What did you say, I'm not listening!"),
        Label("samplenew3_00000002", "sad"),
        Label("samplenew3_00000003", "contempt", 1.0),
    ]
    assert classes == ["neutral", "angry", "happy", "sad", "worried", "surprise", "contempt"]
    assert report == ["1 labels outside the MER classes added as 1 new class(es) after them: 1 'contempt'",
                      "2 labels have no english transcription (text left empty)",
                      "ignored 1 transcription rows with no label"]
    chinese = convert_mer([trans, disdim], text_lang="chinese", allow_extra_classes=True)
    assert chinese[0].text == "你说什么，我不听！"


def test_mer_typo_is_not_a_new_class(tmp_path):
    path = write(tmp_path / "train-label.csv", "name,discrete,valence\na,happy,1\nb,hapy,2\nc,Sad,-10\n")
    with pytest.raises(LabelError, match=r"train-label\.csv: line 3 \(name 'b'\): column 'discrete': label 'hapy' "
                                         r"is not one of the MER classes \(neutral, angry, happy, sad, worried, "
                                         r"surprise\)"):
        convert("mer", path)
    report: list[str] = []
    labels, classes = convert("mer", path, report=report, allow_extra_classes=True)
    assert [x.emotion for x in labels] == ["happy", "hapy", "Sad"]
    assert classes == ["neutral", "angry", "happy", "sad", "worried", "surprise", "Sad", "hapy"]
    assert report == ["2 labels outside the MER classes added as 2 new class(es) after them: 1 'Sad', 1 'hapy'"]


@pytest.mark.parametrize("content, message", [
    ("discrete,valence\nhappy,1\n", (r"train-label\.csv: missing column 'name' \(header line 1 has: discrete, "
                                    r"valence\); expected a CSV header with columns name")),
    ("name,valence\na,1\n", r"neither a MER label file \(columns name, discrete, valence\) nor a transcription"),
    ("name,discrete,valence\na,happy,1\nb,,2\n", (r"train-label\.csv: line 3: column 'discrete' is empty, expected "
                                                  r"an emotion label")),
    ("name,discrete,valence\na,happy,high\n", (r"line 2 \(name 'a'\): column 'valence': expected a number, "
                                              r"found 'high'")),
    ("name,discrete,valence\na,happy,1\nb,sad\n", r"line 3: 2 fields, the header has 3 \(name, discrete, valence\)"),
    ("name,discrete,valence\na,happy,1\nb,sad,2\na,sad,3\n",
     r"duplicate video id 'a': .*train-label\.csv: line 2 and .*train-label\.csv: line 4"),
    ("", r"train-label\.csv: empty file, expected a CSV header with columns name"),
])
def test_mer_rejects(tmp_path, content, message):
    with pytest.raises(LabelError, match=message):
        convert("mer", write(tmp_path / "train-label.csv", content))


def test_mer_transcription_missing_language_column(tmp_path):
    disdim = write(tmp_path / "label-disdim.csv", "name,discrete\na,happy\n")
    trans = write(tmp_path / "label-transcription.csv", "name,chinese\na,你好\n")
    with pytest.raises(LabelError, match=r"label-transcription\.csv: missing column 'english' for "
                                         r"text_lang='english' \(header has: name, chinese\)"):
        convert_mer([disdim, trans])


# ------------------------------------------------------------------------------------------------- MELD


MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"
MELD_TRAIN = "\ufeff" + MELD_HEADER + (
    '1,"also I was the point person on my company\'s transition from the KL-5 to GR-6 system.",Chandler,neutral,'
    'neutral,0,0,8,21,"00:16:16,059","00:16:21,731"\n'
    '2,"You must\'ve had your hands full.",The Interviewer,neutral,neutral,0,1,8,21,"00:16:21,940","00:16:23,442"\n'
    '3,"Oh, my God,\nshe said ""no"", again!",Monica,surprise,negative,1,0,2,3,"00:01:00,000","00:01:02,000"\n'
    '4,"Ugh.",Ross,disgust,negative,1,1,2,3,"00:01:02,100","00:01:03,000"\n'
)


def test_meld(tmp_path):
    train = write(tmp_path / "train_sent_emo.csv", MELD_TRAIN)
    labels, classes = convert("meld", [train])
    assert labels == [
        Label("dia0_utt0", "neutral", "neutral",
              "also I was the point person on my company's transition from the KL-5 to GR-6 system."),
        Label("dia0_utt1", "neutral", "neutral", "You must've had your hands full."),
        Label("dia1_utt0", "surprise", "negative", 'Oh, my God,\nshe said "no", again!'),
        Label("dia1_utt1", "disgust", "negative", "Ugh."),
    ]
    assert classes == ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]


def test_meld_merged_splits_need_a_prefix(tmp_path):
    train = write(tmp_path / "train_sent_emo.csv", MELD_TRAIN)
    dev = write(tmp_path / "dev_sent_emo.csv", MELD_HEADER + '1,"Hi.",Joey,joy,positive,0,0,1,1,a,b\n')
    with pytest.raises(LabelError, match=r"duplicate video id 'dia0_utt0': .*train_sent_emo\.csv: line 2 and "
                                         r".*dev_sent_emo\.csv: line 2"):
        convert("meld", [train, dev])
    labels = convert_meld([train, dev], id_prefix="{split}_")
    assert [x.video_id for x in labels] == ["train_dia0_utt0", "train_dia0_utt1", "train_dia1_utt0",
                                            "train_dia1_utt1", "dev_dia0_utt0"]
    assert convert_meld([dev], id_prefix="dev/")[0].video_id == "dev/dia0_utt0"


def test_meld_unknown_emotion(tmp_path, capsys):
    path = write(tmp_path / "dev_sent_emo.csv", MELD_HEADER + '1,"Hi.",Joey,joy,positive,0,0,1,1,a,b\n'
                                                '2,"Hm.",Joey,contempt,negative,0,1,1,1,a,b\n'
                                                '3,"Ha.",Joey,contempt,negative,0,2,1,1,a,b\n')
    with pytest.raises(LabelError, match=r"dev_sent_emo\.csv: line 3 \('dia0_utt1'\): column 'Emotion': label "
                                         r"'contempt' is not one of the MELD classes \(anger, disgust, fear, joy, "
                                         r"neutral, sadness, surprise\); correct it, or pass allow_extra_classes"):
        convert("meld", path)
    report: list[str] = []
    labels, classes = convert("meld", path, report=report, allow_extra_classes=True)
    assert [x.emotion for x in labels] == ["joy", "contempt", "contempt"]
    assert classes == ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise", "contempt"]
    assert report == ["2 labels outside the MELD classes added as 1 new class(es) after them: 2 'contempt'"]
    out = tmp_path / "ds"
    with pytest.raises(LabelError, match="label 'contempt' is not one of the MELD classes"):
        cli(["labels", "meld", str(path), "--out", str(out)])
    assert not out.exists()
    assert cli(["labels", "meld", str(path), "--out", str(out), "--extra-classes"]) == 0
    assert read_classes(out / "classes.json")[-1] == "contempt"
    line = capsys.readouterr().out
    assert line.rstrip().endswith("; 2 labels outside the MELD classes added as 1 new class(es) after them: "
                                  "2 'contempt'")


def test_meld_rejects(tmp_path):
    bad = write(tmp_path / "test_sent_emo.csv", MELD_HEADER.replace("Emotion,", "Emotions,") + "1,a,b,c,d,0,0,1,1,x,y\n")
    with pytest.raises(LabelError, match=r"test_sent_emo\.csv: missing column 'Emotion' \(header line 1 has: "
                                         r"Sr No\., Utterance, Speaker, Emotions, "):
        convert("meld", bad)
    # The multi-line utterance makes the bad record start on line 4 of the file.
    bad = write(tmp_path / "dev_sent_emo.csv", MELD_HEADER + '1,"a\nb",S,joy,positive,0,0,1,1,x,y\n'
                                               '2,"c",S,joy,positive,0,x1,1,1,x,y\n')
    with pytest.raises(LabelError, match=r"dev_sent_emo\.csv: line 4: column 'Utterance_ID': expected a "
                                         r"non-negative integer, found 'x1'"):
        convert("meld", bad)
    bad = write(tmp_path / "dev_sent_emo.csv", MELD_HEADER + '1,"a",S,,positive,0,0,1,1,x,y\n')
    with pytest.raises(LabelError, match=r"line 2: column 'Emotion' is empty, expected an emotion label for "
                                         r"'dia0_utt0'"):
        convert("meld", bad)


# ---------------------------------------------------------------------------------------------- IEMOCAP


def emo_evaluation(turns: list[tuple[str, str]]) -> str:
    """An EmoEvaluation file as IEMOCAP ships it: a header, then per turn a summary line and evaluator lines."""
    out = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    for i, (turn, code) in enumerate(turns):
        out += [f"[{6.29 + 4 * i:.4f} - {8.23 + 4 * i:.4f}]\t{turn}\t{code}\t[2.5000, 2.5000, 2.5000]",
                "C-E2:\tNeutral;\t()", "C-E3:\tNeutral;\t()", "C-F1:\tNeutral;\t(curious)",
                "A-E3:\tval 3; act 2; dom  2;\t()", "A-F1:\tval 3; act 2; dom  1;\t()", ""]
    return "\n".join(out)


@pytest.fixture
def iemocap_root(tmp_path):
    root = tmp_path / "IEMOCAP_full_release"
    ev1 = root / "Session1" / "dialog" / "EmoEvaluation"
    write(ev1 / "Ses01F_impro01.txt", emo_evaluation([
        ("Ses01F_impro01_F000", "neu"), ("Ses01F_impro01_F001", "hap"), ("Ses01F_impro01_M000", "exc"),
        ("Ses01F_impro01_M001", "xxx"), ("Ses01F_impro01_F002", "fru"),
    ]))
    write(root / "Session2" / "dialog" / "EmoEvaluation" / "Ses02M_script01_1.txt", emo_evaluation([
        ("Ses02M_script01_1_F000", "sad"), ("Ses02M_script01_1_M000", "ang"), ("Ses02M_script01_1_M001", "sur"),
        ("Ses02M_script01_1_F001", "oth"), ("Ses02M_script01_1_F002", "fru"),
    ]))
    # Neither of these is a turn-level EmoEvaluation file: both must be ignored.
    write(ev1 / "Categorical" / "Ses01F_impro01_e2_cat.txt", "Ses01F_impro01_F000 :Neutral state; ()\n")
    write(ev1 / "._Ses01F_impro01.txt", "\x00\x05\x16\x07 resource fork")
    return root


def test_iemocap_4way(iemocap_root):
    report: list[str] = []
    labels, classes = convert("iemocap", [iemocap_root], report=report)
    assert labels == [
        Label("Ses01F_impro01_F000", "neutral"), Label("Ses01F_impro01_F001", "happy"),
        Label("Ses01F_impro01_M000", "happy"), Label("Ses02M_script01_1_F000", "sad"),
        Label("Ses02M_script01_1_M000", "angry"),
    ]
    assert classes == ["neutral", "angry", "happy", "sad"]
    assert report == ["skipped 2 turns without an agreed emotion: 1 'oth', 1 'xxx'",
                      "merged 1 'excited' turns into 'happy' (4-way)",
                      "dropped 3 turns outside the 4-way classes: 2 'frustrated', 1 'surprise'"]


def test_iemocap_6way_from_files(iemocap_root):
    report: list[str] = []
    files = sorted(iemocap_root.glob("Session*/dialog/EmoEvaluation/Ses*.txt"))
    labels, classes = convert("iemocap", files, classes="6", report=report)
    assert [(x.video_id, x.emotion) for x in labels] == [
        ("Ses01F_impro01_F000", "neutral"), ("Ses01F_impro01_F001", "happy"), ("Ses01F_impro01_M000", "excited"),
        ("Ses01F_impro01_F002", "frustrated"), ("Ses02M_script01_1_F000", "sad"), ("Ses02M_script01_1_M000", "angry"),
        ("Ses02M_script01_1_F002", "frustrated"),
    ]
    assert classes == ["neutral", "angry", "happy", "sad", "excited", "frustrated"]
    assert report == ["skipped 2 turns without an agreed emotion: 1 'oth', 1 'xxx'",
                      "dropped 1 turns outside the 6-way classes: 1 'surprise'"]


def test_iemocap_rejects(tmp_path, iemocap_root):
    with pytest.raises(LabelError, match=r"IEMOCAP classes 5: expected one of 4, 6"):
        convert_iemocap(iemocap_root, classes=5)
    with pytest.raises(LabelError, match=r"empty: no EmoEvaluation/\*\.txt files found under this directory"):
        convert_iemocap((tmp_path / "empty").mkdir() or tmp_path / "empty")
    bad = write(tmp_path / "Ses03F_impro02.txt", emo_evaluation([("Ses03F_impro02_F000", "bored")]))
    with pytest.raises(LabelError, match=r"Ses03F_impro02\.txt: line 3 \(turn 'Ses03F_impro02_F000'\): unknown "
                                         r"emotion code 'bored'; expected one of neu, hap, exc, "):
        convert_iemocap(bad)
    bad = write(tmp_path / "Ses03F_impro03.txt", "% header\n\n[6.2901 - 8.2357] Ses03F_impro03_F000\n")
    with pytest.raises(LabelError, match=r"Ses03F_impro03\.txt: line 3: expected '\[start - end\]<TAB>turn id"):
        convert_iemocap(bad)
    with pytest.raises(LabelError, match=r"labels\.csv: a CSV, not an EmoEvaluation \.txt file; convert it with "
                                         r"the 'csv' converter"):
        convert_iemocap(tmp_path / "labels.csv")
    dup = write(tmp_path / "copy" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt",
                emo_evaluation([("Ses01F_impro01_F000", "neu")]))
    with pytest.raises(LabelError, match=r"duplicate video id 'Ses01F_impro01_F000': .*Session1.*Ses01F_impro01\.txt: "
                                         r"line 3 and .*copy.*Ses01F_impro01\.txt: line 3"):
        convert_iemocap([iemocap_root, dup])


def test_iemocap_simple_csv_goes_through_the_generic_converter(tmp_path):
    path = write(tmp_path / "iemocap.csv", "utterance_id,label\nSes01F_impro01_F000,neu\nSes05F_script03_1_F033,ang\n")
    labels, classes = convert("csv", path)
    assert labels == [Label("Ses01F_impro01_F000", "neu"), Label("Ses05F_script03_1_F033", "ang")]
    assert classes == ["ang", "neu"]


# ------------------------------------------------------------------------------------------------ MOSEI


def test_mosei_video_clip_columns(tmp_path):
    path = write(tmp_path / "mosei.csv",
                 "video,clip,sentiment,happiness,sadness,anger,fear,disgust,surprise,text\n"
                 "-3g5yACwYnA,0,1.0,0.6667,0,0,0,0,0.3333,\"well, I liked it\"\n"
                 "-3g5yACwYnA,1,-2.3333,0,1.3333,1.3333,0,0,0,\n"
                 "zhpQhgha_KU,3,0,0,0,0,0,0,0,meh\n")
    report: list[str] = []
    labels, classes = convert("mosei", path, report=report)
    assert labels == [
        Label("-3g5yACwYnA_0", "happiness", 1.0, "well, I liked it"),
        Label("-3g5yACwYnA_1", "sadness", -2.3333),
        Label("zhpQhgha_KU_3", "neutral", 0.0, "meh"),
    ]
    assert classes == ["neutral", "happiness", "sadness", "anger", "fear", "disgust", "surprise"]
    assert report == [("1 clips had tied strongest emotions; took the first in the order happiness, sadness, anger, "
                      "fear, disgust, surprise")]


# CMU-MultimodalSDK's spelling and order of the intensity columns
MOSEI_SDK = ("video_id,sentiment,happy,sad,anger,surprise,disgust,fear\n"
             "a[0],1.0,0.6667,0,0,0.3333,0,0\n"
             "a[1],-2.3333,0,1.3333,1.3333,0,0,0\n"
             "b[3],0,0,0,0,0,0,0\n"
             "c[1],-1,0,0,0,0,0,2\n")


def test_mosei_sdk_column_names(tmp_path):
    report: list[str] = []
    labels, classes = convert("mosei", write(tmp_path / "mosei.csv", MOSEI_SDK), report=report)
    assert labels == [
        Label("a[0]", "happiness", 1.0),
        Label("a[1]", "sadness", -2.3333),  # tie with anger: the first in happiness, sadness, anger, ...
        Label("b[3]", "neutral", 0.0),
        Label("c[1]", "fear", -1.0),
    ]
    assert classes == ["neutral", "happiness", "sadness", "anger", "fear", "disgust", "surprise"]
    assert report == [("1 clips had tied strongest emotions; took the first in the order happiness, sadness, anger, "
                      "fear, disgust, surprise")]
    spec = MOSEI_SDK.replace("happy,sad,anger,surprise,disgust,fear", "happiness,sadness,anger,surprise,disgust,fear")
    assert convert("mosei", write(tmp_path / "spec.csv", spec)) == (labels, classes)


def test_mosei_video_id_column(tmp_path):
    path = write(tmp_path / "mosei.csv", "video_id,sentiment,happiness,sadness,anger,fear,disgust,surprise\n"
                                         "abc[2],-0.5,0,0,0,0.3,1,0\n")
    assert convert_mosei(path) == [Label("abc[2]", "disgust", -0.5)]


@pytest.mark.parametrize("content, message", [
    ("video_id,sentiment,happiness,sadness,anger,fear,disgust\n", r"mosei\.csv: missing column 'surprise'"),
    ("video_id,sentiment,sadness,anger,fear,disgust,surprise\n",
     (r"mosei\.csv: missing column 'happiness' \(or 'happy'\) \(header has: video_id, sentiment, sadness, anger, "
      r"fear, disgust, surprise\); expected sentiment and the six emotion intensities happiness \(or happy\), "
      r"sadness \(or sad\), anger, fear, disgust, surprise")),
    ("video_id,sentiment,happy,happiness,sad,anger,fear,disgust,surprise\n",
     r"mosei\.csv: both 'happiness' and 'happy' columns"),
    ("video,sentiment,happiness,sadness,anger,fear,disgust,surprise\n",
     r"missing column 'video_id' \(or 'video' with 'clip'/'segment'\)"),
    ("video_id,sentiment,happiness,sadness,anger,fear,disgust,surprise\nv1,3.5,0,0,0,0,0,0\n",
     r"mosei\.csv: line 2 \(video_id 'v1'\): column 'sentiment': expected a score in \[-3, 3\], found '3\.5'"),
    ("video_id,sentiment,happiness,sadness,anger,fear,disgust,surprise\nv1,1,0,-1,0,0,0,0\n",
     r"line 2 \(video_id 'v1'\): column 'sadness': expected an intensity >= 0, found '-1'"),
    ("video_id,sentiment,happiness,sadness,anger,fear,disgust,surprise\nv1,1,0,,0,0,0,0\n",
     r"column 'sadness': expected an intensity >= 0, found ''"),
    ("video_id,sentiment,happiness,sadness,anger,fear,disgust,surprise\nv1,1,0,nan,0,0,0,0\n",
     r"column 'sadness': expected a number, found 'nan'"),
])
def test_mosei_rejects(tmp_path, content, message):
    with pytest.raises(LabelError, match=message):
        convert("mosei", write(tmp_path / "mosei.csv", content))


# ---------------------------------------------------------------------------------------------- generic


def test_generic_csv_auto_columns(tmp_path):
    path = write(tmp_path / "mine.csv", "video_id,emotion,sentiment,text,extra\n"
                                        "v1,joy,positive,hello,1\nv2,anger,-1.5,,2\nv3,joy,,,3\n")
    report: list[str] = []
    labels, classes = convert("csv", path, report=report)
    assert labels == [Label("v1", "joy", "positive", "hello"), Label("v2", "anger", -1.5), Label("v3", "joy")]
    assert classes == ["anger", "joy"]
    assert report == ["mine.csv: columns id 'video_id', emotion 'emotion', sentiment 'sentiment', text 'text'"]


def test_generic_csv_explicit_columns_and_delimiter(tmp_path):
    tsv = write(tmp_path / "a.tsv", "clip\tcat\tsay\nc1\thappy\thi, there\n")
    assert convert("csv", tsv, id_col="clip", label_col="cat", text_col="say") == (
        [Label("c1", "happy", None, "hi, there")], ["happy"])
    tabbed = write(tmp_path / "t.txt", "name\tlabel\nn1\thappy\n")
    assert cli(["labels", "csv", str(tabbed), "--out", str(tmp_path / "o"), "--delimiter", "tab"]) == 0
    assert read_labels(tmp_path / "o" / "labels.json") == [Label("n1", "happy")]
    semi = write(tmp_path / "b.csv", "name;label\nn1;sad\n")
    assert convert("csv", semi, delimiter=";")[0] == [Label("n1", "sad")]


def test_generic_csv_rejects(tmp_path):
    path = write(tmp_path / "mine.csv", "clip,emotion\nc1,joy\n")
    with pytest.raises(LabelError, match=r"mine\.csv: no video id column: expected one of video_id, utterance_id, "
                                         r"name \(header has: clip, emotion\)"):
        convert("csv", path)
    with pytest.raises(LabelError, match=r"mine\.csv: missing column 'label' for the emotion label"):
        convert("csv", path, id_col="clip", label_col="label")
    with pytest.raises(LabelError, match=r"empty\.csv: empty file, expected a CSV header"):
        convert("csv", write(tmp_path / "empty.csv", "\n\n"))
    with pytest.raises(LabelError, match=r"missing\.csv: no such file"):
        convert("csv", tmp_path / "missing.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("name,label\nn1,happy\nn2,fâché\n".encode("latin-1"))
    with pytest.raises(LabelError, match=r"latin\.csv: line 3: not UTF-8 \(byte 0xe2\)"):
        convert("csv", latin)
    with pytest.raises(LabelError, match=r"csv: no labels found in .*header\.csv"):
        convert("csv", write(tmp_path / "header.csv", "name,label\n"))


def test_convert_rejects_unknown_kind_and_option(tmp_path):
    with pytest.raises(LabelError, match=r"unknown label format 'affwild': expected one of mer, meld, iemocap, "
                                         r"mosei, csv"):
        convert("affwild", [tmp_path / "x.csv"])
    with pytest.raises(LabelError, match=r"meld: unknown option\(s\) text_lang; accepted: id_prefix"):
        convert("meld", [tmp_path / "x.csv"], text_lang="english")


# ---------------------------------------------------------------------------------------------------- CLI


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="herostore")
    cli_labels.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_iemocap(tmp_path, iemocap_root, capsys):
    out = tmp_path / "dataset"
    assert cli(["labels", "iemocap", str(iemocap_root), "--out", str(out), "--classes", "6"]) == 0
    assert read_classes(out / "classes.json") == ["neutral", "angry", "happy", "sad", "excited", "frustrated"]
    assert load_label_set(out / "labels.json")[0][2] == Label("Ses01F_impro01_M000", "excited")
    line = capsys.readouterr().out
    assert line.count("\n") == 1
    assert line.startswith(f"wrote 7 labels in 6 classes (neutral 1, angry 1, happy 1, sad 1, excited 1, "
                           f"frustrated 2) to {out / 'labels.json'} and classes.json; skipped 2 turns")
    assert line.rstrip().endswith("dropped 1 turns outside the 6-way classes: 1 'surprise'")


def test_cli_mer_and_overwrite(tmp_path, capsys):
    disdim = write(tmp_path / "label-disdim.csv", "name,discrete,valence\ns1,happy,1\n")
    trans = write(tmp_path / "label-transcription.csv", "name,chinese,english\ns1,你好,hello\n")
    out = tmp_path / "ds"
    assert cli(["labels", "mer", str(disdim), str(trans), "--out", str(out), "--text-lang", "chinese"]) == 0
    assert read_labels(out / "labels.json") == [Label("s1", "happy", 1.0, "你好")]
    with pytest.raises(LabelError, match=r"ds[/\\]labels\.json, .*classes\.json already exists; pass --force"):
        cli(["labels", "mer", str(disdim), "--out", str(out)])
    assert cli(["labels", "mer", str(disdim), "--out", str(out), "--force"]) == 0
    assert read_labels(out / "labels.json") == [Label("s1", "happy", 1.0)]
    assert "wrote 1 labels in 6 classes (neutral 0, angry 0, happy 1," in capsys.readouterr().out


def test_cli_csv_options_and_errors_propagate(tmp_path):
    path = write(tmp_path / "x.csv", "clip;cat\nc1;happy\nc1;sad\n")
    with pytest.raises(HerostoreError, match=r"duplicate video id 'c1': .*x\.csv: line 2 and .*x\.csv: line 3"):
        cli(["labels", "csv", str(path), "--out", str(tmp_path / "o"), "--id-col", "clip", "--label-col", "cat",
             "--delimiter", ";"])
    assert not (tmp_path / "o").exists()
    write(path, "clip;cat\nc1;happy\n")
    assert cli(["labels", "csv", str(path), "--out", str(tmp_path / "o"), "--id-col", "clip", "--label-col", "cat",
                "--delimiter", ";"]) == 0
    assert read_labels(tmp_path / "o" / "labels.json") == [Label("c1", "happy")]
