"""The dataset converters, their registry, and the ``herostore labels`` command built from it."""

from __future__ import annotations

import argparse
import inspect

import pytest
from conftest import write_text

from herostore.cli import labels as cli_labels
from herostore.converters import CONVERTERS, convert, read_iemocap, read_meld, read_mer, read_mosei
from herostore.errors import HerostoreError, LabelError
from herostore.labels import Label, load_label_set, read_classes, read_labels

# -------------------------------------------------------------------------------------------------- MER


MER2023 = """name,discrete,valence
sample_00000007,neutral,-10
sample_00000021,happy,2.5
sample_00000030,worried,-1
sample_00000044,surprise,0
"""


def test_mer2023(tmp_path):
    labels, classes, notes = convert("mer", [write_text(tmp_path / "train-label.csv", MER2023)])
    assert labels == [
        Label("sample_00000007", "neutral"),
        Label("sample_00000021", "happy", 2.5),
        Label("sample_00000030", "worried", -1.0),
        Label("sample_00000044", "surprise", 0.0),
    ]
    assert classes == ["neutral", "angry", "happy", "sad", "worried", "surprise"]
    assert notes == []


def test_mer2024_with_transcription(tmp_path):
    disdim = write_text(tmp_path / "label-disdim.csv", "name,discrete,valence\nsamplenew3_00000001,angry,-3.2\n"
                                                  "samplenew3_00000002,sad,-10\nsamplenew3_00000003,contempt,1\n")
    trans = write_text(tmp_path / "label-transcription.csv",
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
    labels, classes, notes = convert("mer", [disdim, trans], allow_extra_classes=True)
    assert labels == [
        Label("samplenew3_00000001", "angry", -3.2, "What did you say, I'm not listening!"),
        Label("samplenew3_00000002", "sad"),
        Label("samplenew3_00000003", "contempt", 1.0),
    ]
    assert classes == ["neutral", "angry", "happy", "sad", "worried", "surprise", "contempt"]
    assert notes == ["1 labels outside the MER classes added as 1 new class(es) after them: 1 'contempt'",
                      "2 labels have no english transcription (text left empty)",
                      "ignored 1 transcription rows with no label"]
    chinese, _ = read_mer([trans, disdim], text_lang="chinese", allow_extra_classes=True)
    assert chinese[0].text == "你说什么，我不听！"


def test_mer_typo_is_not_a_new_class(tmp_path):
    path = write_text(tmp_path / "train-label.csv", "name,discrete,valence\na,happy,1\nb,hapy,2\nc,Sad,-10\n")
    with pytest.raises(LabelError, match=r"train-label\.csv: line 3 \(name 'b'\): column 'discrete': label 'hapy' "
                                         r"is not one of the MER classes \(neutral, angry, happy, sad, worried, "
                                         r"surprise\)"):
        convert("mer", path)
    labels, classes, notes = convert("mer", path, allow_extra_classes=True)
    assert [x.emotion for x in labels] == ["happy", "hapy", "Sad"]
    assert classes == ["neutral", "angry", "happy", "sad", "worried", "surprise", "Sad", "hapy"]
    assert notes == ["2 labels outside the MER classes added as 2 new class(es) after them: 1 'Sad', 1 'hapy'"]


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
        convert("mer", write_text(tmp_path / "train-label.csv", content))


def test_mer_transcription_missing_language_column(tmp_path):
    disdim = write_text(tmp_path / "label-disdim.csv", "name,discrete\na,happy\n")
    trans = write_text(tmp_path / "label-transcription.csv", "name,chinese\na,你好\n")
    with pytest.raises(LabelError, match=r"label-transcription\.csv: missing column 'english' for "
                                         r"text_lang='english' \(header has: name, chinese\)"):
        read_mer([disdim, trans])


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
    train = write_text(tmp_path / "train_sent_emo.csv", MELD_TRAIN)
    labels, classes, notes = convert("meld", [train])
    assert labels == [
        Label("dia0_utt0", "neutral", "neutral",
              "also I was the point person on my company's transition from the KL-5 to GR-6 system."),
        Label("dia0_utt1", "neutral", "neutral", "You must've had your hands full."),
        Label("dia1_utt0", "surprise", "negative", 'Oh, my God,\nshe said "no", again!'),
        Label("dia1_utt1", "disgust", "negative", "Ugh."),
    ]
    assert classes == ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
    assert notes == []


def test_meld_merged_splits_need_a_prefix(tmp_path):
    train = write_text(tmp_path / "train_sent_emo.csv", MELD_TRAIN)
    dev = write_text(tmp_path / "dev_sent_emo.csv", MELD_HEADER + '1,"Hi.",Joey,joy,positive,0,0,1,1,a,b\n')
    with pytest.raises(LabelError, match=r"duplicate video id 'dia0_utt0': .*train_sent_emo\.csv: line 2 and "
                                         r".*dev_sent_emo\.csv: line 2"):
        convert("meld", [train, dev])
    labels, notes = read_meld([train, dev], id_prefix="{split}_")
    assert [x.video_id for x in labels] == ["train_dia0_utt0", "train_dia0_utt1", "train_dia1_utt0",
                                            "train_dia1_utt1", "dev_dia0_utt0"]
    assert notes == []
    assert read_meld([dev], id_prefix="dev/")[0][0].video_id == "dev/dia0_utt0"


def test_meld_unknown_emotion(tmp_path, capsys):
    path = write_text(tmp_path / "dev_sent_emo.csv", MELD_HEADER + '1,"Hi.",Joey,joy,positive,0,0,1,1,a,b\n'
                                                '2,"Hm.",Joey,contempt,negative,0,1,1,1,a,b\n'
                                                '3,"Ha.",Joey,contempt,negative,0,2,1,1,a,b\n')
    with pytest.raises(LabelError, match=r"dev_sent_emo\.csv: line 3 \('dia0_utt1'\): column 'Emotion': label "
                                         r"'contempt' is not one of the MELD classes \(anger, disgust, fear, joy, "
                                         r"neutral, sadness, surprise\); correct it, or pass allow_extra_classes"):
        convert("meld", path)
    labels, classes, notes = convert("meld", path, allow_extra_classes=True)
    assert [x.emotion for x in labels] == ["joy", "contempt", "contempt"]
    assert classes == ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise", "contempt"]
    assert notes == ["2 labels outside the MELD classes added as 1 new class(es) after them: 2 'contempt'"]
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
    bad = write_text(tmp_path / "test_sent_emo.csv", MELD_HEADER.replace("Emotion,", "Emotions,") + "1,a,b,c,d,0,0,1,1,x,y\n")
    with pytest.raises(LabelError, match=r"test_sent_emo\.csv: missing column 'Emotion' \(header line 1 has: "
                                         r"Sr No\., Utterance, Speaker, Emotions, "):
        convert("meld", bad)
    # The multi-line utterance makes the bad record start on line 4 of the file.
    bad = write_text(tmp_path / "dev_sent_emo.csv", MELD_HEADER + '1,"a\nb",S,joy,positive,0,0,1,1,x,y\n'
                                               '2,"c",S,joy,positive,0,x1,1,1,x,y\n')
    with pytest.raises(LabelError, match=r"dev_sent_emo\.csv: line 4: column 'Utterance_ID': expected a "
                                         r"non-negative integer, found 'x1'"):
        convert("meld", bad)
    bad = write_text(tmp_path / "dev_sent_emo.csv", MELD_HEADER + '1,"a",S,,positive,0,0,1,1,x,y\n')
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
    write_text(ev1 / "Ses01F_impro01.txt", emo_evaluation([
        ("Ses01F_impro01_F000", "neu"), ("Ses01F_impro01_F001", "hap"), ("Ses01F_impro01_M000", "exc"),
        ("Ses01F_impro01_M001", "xxx"), ("Ses01F_impro01_F002", "fru"),
    ]))
    write_text(root / "Session2" / "dialog" / "EmoEvaluation" / "Ses02M_script01_1.txt", emo_evaluation([
        ("Ses02M_script01_1_F000", "sad"), ("Ses02M_script01_1_M000", "ang"), ("Ses02M_script01_1_M001", "sur"),
        ("Ses02M_script01_1_F001", "oth"), ("Ses02M_script01_1_F002", "fru"),
    ]))
    # Neither of these is a turn-level EmoEvaluation file: both must be ignored.
    write_text(ev1 / "Categorical" / "Ses01F_impro01_e2_cat.txt", "Ses01F_impro01_F000 :Neutral state; ()\n")
    write_text(ev1 / "._Ses01F_impro01.txt", "\x00\x05\x16\x07 resource fork")
    return root


def test_iemocap_4way(iemocap_root):
    labels, classes, notes = convert("iemocap", [iemocap_root])
    assert labels == [
        Label("Ses01F_impro01_F000", "neutral"), Label("Ses01F_impro01_F001", "happy"),
        Label("Ses01F_impro01_M000", "happy"), Label("Ses02M_script01_1_F000", "sad"),
        Label("Ses02M_script01_1_M000", "angry"),
    ]
    assert classes == ["neutral", "angry", "happy", "sad"]
    assert notes == ["skipped 2 turns without an agreed emotion: 1 'oth', 1 'xxx'",
                      "merged 1 'excited' turns into 'happy' (4-way)",
                      "dropped 3 turns outside the 4-way classes: 2 'frustrated', 1 'surprise'"]


def test_iemocap_6way_from_files(iemocap_root):
    files = sorted(iemocap_root.glob("Session*/dialog/EmoEvaluation/Ses*.txt"))
    labels, classes, notes = convert("iemocap", files, classes="6")
    assert [(x.video_id, x.emotion) for x in labels] == [
        ("Ses01F_impro01_F000", "neutral"), ("Ses01F_impro01_F001", "happy"), ("Ses01F_impro01_M000", "excited"),
        ("Ses01F_impro01_F002", "frustrated"), ("Ses02M_script01_1_F000", "sad"), ("Ses02M_script01_1_M000", "angry"),
        ("Ses02M_script01_1_F002", "frustrated"),
    ]
    assert classes == ["neutral", "angry", "happy", "sad", "excited", "frustrated"]
    assert notes == ["skipped 2 turns without an agreed emotion: 1 'oth', 1 'xxx'",
                      "dropped 1 turns outside the 6-way classes: 1 'surprise'"]


def test_iemocap_rejects(tmp_path, iemocap_root):
    with pytest.raises(LabelError, match=r"IEMOCAP classes 5: expected one of 4, 6"):
        read_iemocap(iemocap_root, classes=5)
    with pytest.raises(LabelError, match=r"empty: no EmoEvaluation/\*\.txt files found under this directory"):
        read_iemocap((tmp_path / "empty").mkdir() or tmp_path / "empty")
    bad = write_text(tmp_path / "Ses03F_impro02.txt", emo_evaluation([("Ses03F_impro02_F000", "bored")]))
    with pytest.raises(LabelError, match=r"Ses03F_impro02\.txt: line 3 \(turn 'Ses03F_impro02_F000'\): unknown "
                                         r"emotion code 'bored'; expected one of neu, hap, exc, "):
        read_iemocap(bad)
    bad = write_text(tmp_path / "Ses03F_impro03.txt", "% header\n\n[6.2901 - 8.2357] Ses03F_impro03_F000\n")
    with pytest.raises(LabelError, match=r"Ses03F_impro03\.txt: line 3: expected '\[start - end\]<TAB>turn id"):
        read_iemocap(bad)
    with pytest.raises(LabelError, match=r"labels\.csv: a CSV, not an EmoEvaluation \.txt file; convert it with "
                                         r"the 'csv' converter"):
        read_iemocap(tmp_path / "labels.csv")
    dup = write_text(tmp_path / "copy" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt",
                emo_evaluation([("Ses01F_impro01_F000", "neu")]))
    with pytest.raises(LabelError, match=r"duplicate video id 'Ses01F_impro01_F000': .*Session1.*Ses01F_impro01\.txt: "
                                         r"line 3 and .*copy.*Ses01F_impro01\.txt: line 3"):
        read_iemocap([iemocap_root, dup])


def test_iemocap_simple_csv_goes_through_the_generic_converter(tmp_path):
    path = write_text(tmp_path / "iemocap.csv", "utterance_id,label\nSes01F_impro01_F000,neu\nSes05F_script03_1_F033,ang\n")
    labels, classes, _ = convert("csv", path)
    assert labels == [Label("Ses01F_impro01_F000", "neu"), Label("Ses05F_script03_1_F033", "ang")]
    assert classes == ["ang", "neu"]


# ------------------------------------------------------------------------------------------------ MOSEI


def test_mosei_video_clip_columns(tmp_path):
    path = write_text(tmp_path / "mosei.csv",
                 "video,clip,sentiment,happiness,sadness,anger,fear,disgust,surprise,text\n"
                 "-3g5yACwYnA,0,1.0,0.6667,0,0,0,0,0.3333,\"well, I liked it\"\n"
                 "-3g5yACwYnA,1,-2.3333,0,1.3333,1.3333,0,0,0,\n"
                 "zhpQhgha_KU,3,0,0,0,0,0,0,0,meh\n")
    labels, classes, notes = convert("mosei", path)
    assert labels == [
        Label("-3g5yACwYnA_0", "happiness", 1.0, "well, I liked it"),
        Label("-3g5yACwYnA_1", "sadness", -2.3333),
        Label("zhpQhgha_KU_3", "neutral", 0.0, "meh"),
    ]
    assert classes == ["neutral", "happiness", "sadness", "anger", "fear", "disgust", "surprise"]
    assert notes == [("1 clips had tied strongest emotions; took the first in the order happiness, sadness, anger, "
                      "fear, disgust, surprise")]


# CMU-MultimodalSDK's spelling and order of the intensity columns
MOSEI_SDK = ("video_id,sentiment,happy,sad,anger,surprise,disgust,fear\n"
             "a[0],1.0,0.6667,0,0,0.3333,0,0\n"
             "a[1],-2.3333,0,1.3333,1.3333,0,0,0\n"
             "b[3],0,0,0,0,0,0,0\n"
             "c[1],-1,0,0,0,0,0,2\n")


def test_mosei_sdk_column_names(tmp_path):
    labels, classes, notes = convert("mosei", write_text(tmp_path / "mosei.csv", MOSEI_SDK))
    assert labels == [
        Label("a[0]", "happiness", 1.0),
        Label("a[1]", "sadness", -2.3333),  # tie with anger: the first in happiness, sadness, anger, ...
        Label("b[3]", "neutral", 0.0),
        Label("c[1]", "fear", -1.0),
    ]
    assert classes == ["neutral", "happiness", "sadness", "anger", "fear", "disgust", "surprise"]
    assert notes == [("1 clips had tied strongest emotions; took the first in the order happiness, sadness, anger, "
                      "fear, disgust, surprise")]
    spec = MOSEI_SDK.replace("happy,sad,anger,surprise,disgust,fear", "happiness,sadness,anger,surprise,disgust,fear")
    assert convert("mosei", write_text(tmp_path / "spec.csv", spec)) == (labels, classes, notes)


def test_mosei_video_id_column(tmp_path):
    path = write_text(tmp_path / "mosei.csv", "video_id,sentiment,happiness,sadness,anger,fear,disgust,surprise\n"
                                         "abc[2],-0.5,0,0,0,0.3,1,0\n")
    assert read_mosei(path) == ([Label("abc[2]", "disgust", -0.5)], [])


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
        convert("mosei", write_text(tmp_path / "mosei.csv", content))


# ---------------------------------------------------------------------------------------------- generic


def test_generic_csv_auto_columns(tmp_path):
    path = write_text(tmp_path / "mine.csv", "video_id,emotion,sentiment,text,extra\n"
                                        "v1,joy,positive,hello,1\nv2,anger,-1.5,,2\nv3,joy,,,3\n")
    labels, classes, notes = convert("csv", path)
    assert labels == [Label("v1", "joy", "positive", "hello"), Label("v2", "anger", -1.5), Label("v3", "joy")]
    assert classes == ["anger", "joy"]
    assert notes == ["mine.csv: columns id 'video_id', emotion 'emotion', sentiment 'sentiment', text 'text'"]


def test_generic_csv_explicit_columns_and_delimiter(tmp_path):
    tsv = write_text(tmp_path / "a.tsv", "clip\tcat\tsay\nc1\thappy\thi, there\n")
    assert convert("csv", tsv, id_col="clip", label_col="cat", text_col="say") == (
        [Label("c1", "happy", None, "hi, there")], ["happy"], ["a.tsv: columns id 'clip', emotion 'cat', text 'say'"])
    tabbed = write_text(tmp_path / "t.txt", "name\tlabel\nn1\thappy\n")
    assert cli(["labels", "csv", str(tabbed), "--out", str(tmp_path / "o"), "--delimiter", "tab"]) == 0
    assert read_labels(tmp_path / "o" / "labels.json") == [Label("n1", "happy")]
    semi = write_text(tmp_path / "b.csv", "name;label\nn1;sad\n")
    assert convert("csv", semi, delimiter=";")[0] == [Label("n1", "sad")]


def test_generic_csv_rejects(tmp_path):
    path = write_text(tmp_path / "mine.csv", "clip,emotion\nc1,joy\n")
    with pytest.raises(LabelError, match=r"mine\.csv: no video id column: expected one of video_id, utterance_id, "
                                         r"name \(header has: clip, emotion\)"):
        convert("csv", path)
    with pytest.raises(LabelError, match=r"mine\.csv: missing column 'label' for the emotion label"):
        convert("csv", path, id_col="clip", label_col="label")
    with pytest.raises(LabelError, match=r"empty\.csv: empty file, expected a CSV header"):
        convert("csv", write_text(tmp_path / "empty.csv", "\n\n"))
    with pytest.raises(LabelError, match=r"missing\.csv: no such file"):
        convert("csv", tmp_path / "missing.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("name,label\nn1,happy\nn2,fâché\n".encode("latin-1"))
    with pytest.raises(LabelError, match=r"latin\.csv: line 3: not UTF-8 \(byte 0xe2\)"):
        convert("csv", latin)
    with pytest.raises(LabelError, match=r"csv: no labels found in .*header\.csv"):
        convert("csv", write_text(tmp_path / "header.csv", "name,label\n"))


def test_convert_rejects_unknown_kind_and_option(tmp_path):
    with pytest.raises(LabelError, match=r"unknown label format 'affwild': expected one of mer, meld, iemocap, "
                                         r"mosei, csv"):
        convert("affwild", [tmp_path / "x.csv"])
    with pytest.raises(LabelError, match=r"meld: unknown option\(s\) text_lang; accepted: id_prefix, "
                                         r"allow_extra_classes$"):
        convert("meld", [tmp_path / "x.csv"], text_lang="english")
    with pytest.raises(LabelError, match=r"mosei: unknown option\(s\) classes; accepted: none$"):
        convert("mosei", [tmp_path / "x.csv"], classes="4")


def test_registry_options_are_the_converters_keywords():
    """The registry's options (the command-line flags) are exactly each converter's keywords, in order."""
    assert list(CONVERTERS) == ["mer", "meld", "iemocap", "mosei", "csv"]
    for name, converter in CONVERTERS.items():
        assert converter.name == name
        params = inspect.signature(converter.read).parameters.values()
        assert [o.name for o in converter.options] == [p.name for p in params if p.kind is p.KEYWORD_ONLY], name
        assert len({o.flag for o in converter.options}) == len(converter.options), name
    assert CONVERTERS["iemocap"].defaults == {"classes": 4}
    assert CONVERTERS["mer"].defaults == {"text_lang": "english", "allow_extra_classes": False}


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
    disdim = write_text(tmp_path / "label-disdim.csv", "name,discrete,valence\ns1,happy,1\n")
    trans = write_text(tmp_path / "label-transcription.csv", "name,chinese,english\ns1,你好,hello\n")
    out = tmp_path / "ds"
    assert cli(["labels", "mer", str(disdim), str(trans), "--out", str(out), "--text-lang", "chinese"]) == 0
    assert read_labels(out / "labels.json") == [Label("s1", "happy", 1.0, "你好")]
    # The same labels again: nothing to replace, so no --force needed.
    assert cli(["labels", "mer", str(disdim), str(trans), "--out", str(out), "--text-lang", "chinese"]) == 0
    # Without the transcription the text differs: labels.json is kept, the error says how it differs.
    with pytest.raises(LabelError, match=r"ds[/\\]labels\.json exists with 1 labels, the new set has 1: 1 ids with "
                                         r"another text \('s1'\); not replaced; pass --force to replace$"):
        cli(["labels", "mer", str(disdim), "--out", str(out)])
    assert read_labels(out / "labels.json") == [Label("s1", "happy", 1.0, "你好")]
    assert cli(["labels", "mer", str(disdim), "--out", str(out), "--force"]) == 0
    assert read_labels(out / "labels.json") == [Label("s1", "happy", 1.0)]
    assert "wrote 1 labels in 6 classes (neutral 0, angry 0, happy 1," in capsys.readouterr().out


def test_cli_csv_options_and_errors_propagate(tmp_path):
    path = write_text(tmp_path / "x.csv", "clip;cat\nc1;happy\nc1;sad\n")
    with pytest.raises(HerostoreError, match=r"duplicate video id 'c1': .*x\.csv: line 2 and .*x\.csv: line 3"):
        cli(["labels", "csv", str(path), "--out", str(tmp_path / "o"), "--id-col", "clip", "--label-col", "cat",
             "--delimiter", ";"])
    assert not (tmp_path / "o").exists()
    write_text(path, "clip;cat\nc1;happy\n")
    assert cli(["labels", "csv", str(path), "--out", str(tmp_path / "o"), "--id-col", "clip", "--label-col", "cat",
                "--delimiter", ";"]) == 0
    assert read_labels(tmp_path / "o" / "labels.json") == [Label("c1", "happy")]
