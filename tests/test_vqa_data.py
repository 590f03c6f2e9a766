import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from consensus.tasks.vqa.answers import is_correct, normalize_answer
from consensus.tasks.vqa.data import (
    DataError,
    VQAExample,
    activitynet_qa,
    clip_from_image,
    easy_vqa_examples,
    sample_examples,
)
from consensus.tasks.vqa.video import FrameError, write_video


@pytest.mark.parametrize("text, normal", [
    (" The Two dogs.\nand then more text", "2 dogs"),
    ("\n\n  Yes  ", "yes"),
    ("An apple!", "apple"),
    ("Don't know", "dont know"),
    ("red/blue", "red blue"),
    ("2.5 metres.", "2.5 metres"),
    ("TWENTY one", "20 1"),
    ("theatre", "theatre"),
    ("", ""),
])
def test_normalize_answer(text, normal):
    assert normalize_answer(text) == normal


def test_is_correct_is_normalised_exact_match():
    assert is_correct("Three.", "3") and is_correct("the circle", "circle")
    assert not is_correct("dogs", "dog") and not is_correct("red circle", "circle")
    assert not is_correct(None, "yes") and not is_correct("", "") and not is_correct("The", "a")


@pytest.fixture(scope="module")
def easy_test():
    return easy_vqa_examples("test")


def test_easy_vqa_counts_ids_and_types(easy_test):
    assert len(easy_test) == 9673 and len(easy_vqa_examples("train")) == 38575
    assert easy_test[0] == VQAExample("test-0", "what is the red shape?", "triangle", "shape", "easy-vqa/test/0")
    answers_by_type = {t: {e.answer for e in easy_test if e.question_type == t} for t in ("shape", "color", "yes/no")}
    assert answers_by_type["yes/no"] == {"yes", "no"} and answers_by_type["shape"] == {"circle", "rectangle", "triangle"}
    assert len(answers_by_type["color"]) == 8
    assert sum(e.question_type == "yes/no" for e in easy_test) == 7136
    with pytest.raises(DataError, match="'train' and 'test'"):
        easy_vqa_examples("val")


def _shape_mask(image, background):
    return np.abs(np.asarray(image, dtype=int) - background).max(-1) > 40  # noise sd is 8: 5 sd


def test_easy_vqa_clips_are_deterministic_noisy_and_keep_the_shape(easy_test):
    import easy_vqa

    paths = easy_vqa.get_test_image_paths()
    # An image whose shape lies at least 5 px inside the border, so no shift can crop it.
    for example in easy_test:
        still = np.asarray(Image.open(paths[int(example.video.rsplit("/", 1)[1])]).convert("RGB"), dtype=int)
        mask = _shape_mask(still, still[0, 0])
        rows, cols = np.nonzero(mask)
        if min(rows.min(), cols.min()) >= 5 and max(rows.max(), cols.max()) < 59:
            break
    clip = example.frames(6)
    assert len(clip) == 6 and all(f.size == (64, 64) and f.mode == "RGB" for f in clip)
    assert all(np.array_equal(a, b) for a, b in zip(map(np.asarray, clip), map(np.asarray, example.frames(6))))
    arrays = [np.asarray(f, dtype=int) for f in clip]
    assert all(not np.array_equal(arrays[0], a) for a in arrays[1:])
    shape_pixels = [_shape_mask(a, still[0, 0]).sum() for a in arrays]
    assert all(abs(n - mask.sum()) <= 0.05 * mask.sum() for n in shape_pixels)


def test_clip_from_image_shifts_fill_the_border_and_add_noise():
    background = (200, 210, 220)
    image = Image.new("RGB", (20, 20), background)
    image.paste((255, 0, 0), (12, 12, 20, 20))  # in the bottom-right corner: a wrap-around would carry it to the top
    clip = clip_from_image(image, 8, seed=1)
    masks = [_shape_mask(f, background) for f in clip]
    assert len({(np.nonzero(m)[0].min(), np.nonzero(m)[1].min()) for m in masks}) > 1  # it moves
    assert not any(m[:8].any() or m[:, :8].any() for m in masks)
    noise = np.concatenate([(np.asarray(f, dtype=float) - background)[~m] for f, m in zip(clip, masks)])
    assert 7 < noise.std() < 9 and abs(noise.mean()) < 0.5
    same, other = clip_from_image(image, 8, seed=1), clip_from_image(image, 8, seed=2)
    assert np.array_equal(np.asarray(same[3]), np.asarray(clip[3]))
    assert not np.array_equal(np.asarray(other[3]), np.asarray(clip[3]))
    with pytest.raises(FrameError, match="at least one"):
        clip_from_image(image, 0)


def test_stratified_sample_keeps_type_proportions_and_order(easy_test):
    sample = sample_examples(easy_test, 300, seed=0)
    assert len(sample) == 300 and len(set(sample)) == 300
    assert Counter(e.question_type for e in sample) == {"yes/no": 221, "color": 40, "shape": 39}
    positions = [int(e.question_id.split("-")[1]) for e in sample]
    assert positions == sorted(positions)
    assert sample == sample_examples(easy_test, 300, seed=0) != sample_examples(easy_test, 300, seed=1)
    assert sample_examples(easy_test[:5], 10) == easy_test[:5]
    with pytest.raises(DataError, match="at least one"):
        sample_examples(easy_test, 0)


def _write_activitynet(root, questions, answers, split="test"):
    (root / f"{split}_q.json").write_text(json.dumps(questions))
    (root / f"{split}_a.json").write_text(json.dumps(answers))


def test_activitynet_qa_loads_and_finds_videos(tmp_path):
    _write_activitynet(tmp_path, [
        {"question": "what is the man doing", "question_id": "v_abc_0", "video_name": "abc"},
        {"question": "is it outdoors?", "question_id": "v_xyz_1", "video_name": "xyz"},
    ], [
        {"answer": "surfing", "type": 0, "question_id": "v_abc_0"},
        {"answer": "yes", "type": 3, "question_id": "v_xyz_1"},
    ])
    write_video([np.full((16, 16, 3), 40 * i, np.uint8) for i in range(6)], tmp_path / "videos" / "v_abc.mp4")
    first, second = activitynet_qa(tmp_path)
    assert first == VQAExample("v_abc_0", "what is the man doing?", "surfing", "motion",
                               str(tmp_path / "videos" / "v_abc.mp4"))
    assert second.question == "is it outdoors?" and second.question_type == "yes/no"
    assert len(first.frames(3)) == 3
    with pytest.raises(FrameError, match=r"no video file for xyz .*v_xyz\.mp4, .*xyz\.avi.*video_dir"):
        second.frames(3)
    # A video that arrives after loading is found when the frames are asked for.
    write_video([np.zeros((16, 16, 3), np.uint8)] * 2, tmp_path / "videos" / "xyz.mkv")
    assert len(second.frames(3)) == 2


def test_activitynet_qa_video_dir(tmp_path):
    _write_activitynet(tmp_path, [{"question": "q", "question_id": "1", "video_name": "abc"}],
                       [{"answer": "a", "type": 8, "question_id": "1"}], split="val")
    write_video([np.zeros((16, 16, 3), np.uint8)], tmp_path / "elsewhere" / "abc.mp4")
    [example] = activitynet_qa(tmp_path, "val", video_dir=tmp_path / "elsewhere")
    assert example.question_type == "other" and example.video.endswith("abc.mp4")


@pytest.mark.parametrize("questions, answers, message", [
    ("{not json", [], r"test_q.json is not valid JSON"),
    ({"question": "q"}, [], r"test_q.json holds a JSON dict"),
    ([{"question": "q", "video_name": "v"}], [], r"test_q.json entry 0 lacks 'question_id'"),
    ([{"question": "q", "question_id": "1", "video_name": "v"}], [{"answer": "a", "question_id": "1"}],
     r"test_a.json entry 0 lacks 'type'"),
    ([{"question": "q", "question_id": "1", "video_name": "v"}], [{"answer": "a", "type": 0, "question_id": "2"}],
     r"test_q.json entry 0: question '1' has no answer"),
    ([{"question": "q", "question_id": "1", "video_name": "v"}], [{"answer": "a", "type": 9, "question_id": "1"}],
     r"question '1' has type 9; types are 0 to 8"),
    ([], [], r"holds no questions"),
])
def test_malformed_activitynet_files_say_which_file_and_entry(tmp_path, questions, answers, message):
    (tmp_path / "test_q.json").write_text(questions if isinstance(questions, str) else json.dumps(questions))
    (tmp_path / "test_a.json").write_text(json.dumps(answers))
    with pytest.raises(DataError, match=message):
        activitynet_qa(tmp_path)


def test_missing_activitynet_files(tmp_path):
    with pytest.raises(DataError, match=r"test_q.json does not exist.*MILVLG/activitynet-qa"):
        activitynet_qa(tmp_path)
