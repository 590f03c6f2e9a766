import wave

import av
import numpy as np
import pytest
from PIL import Image

from consensus.tasks.vqa.video import FrameError, load_frames, sample_indices, write_video

# Twelve well-separated solid colours: frame i of the test video is COLOURS[i].
COLOURS = [(i * 20, 255 - i * 20, (i * 97) % 256) for i in range(12)]


def solid(colour, size=(21, 33)):
    return np.full((*size, 3), colour, np.uint8)


def mean_colour(image):
    return np.asarray(image, dtype=float).reshape(-1, 3).mean(0)


@pytest.fixture
def video(tmp_path):
    return write_video([solid(c) for c in COLOURS], tmp_path / "clip.mp4")


def test_sample_indices_take_the_middle_of_equal_stretches():
    assert sample_indices(12, 4) == [1, 4, 7, 10]
    assert sample_indices(3, 8) == [0, 1, 2]
    assert sample_indices(100, 1) == [50]


def test_video_frames_are_the_uniformly_sampled_ones(video):
    frames = load_frames(video, count=4)
    assert len(frames) == 4 and all(f.mode == "RGB" for f in frames)
    assert all(f.size == (34, 22) for f in frames)  # odd 33x21 padded to even for yuv420p
    for frame, index in zip(frames, [1, 4, 7, 10]):
        assert np.abs(mean_colour(frame) - COLOURS[index]).max() < 8  # lossy codec, solid colours


def test_short_video_gives_all_its_frames(video):
    frames = load_frames(video, count=20)
    assert len(frames) == 12
    assert np.abs(mean_colour(frames[-1]) - COLOURS[-1]).max() < 8


def test_written_video_is_a_real_mp4(video):
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name in ("h264", "mpeg4") and stream.average_rate == 4


def test_image_folder_in_name_order(tmp_path):
    for i, colour in enumerate(COLOURS[:6]):
        Image.fromarray(solid(colour)).save(tmp_path / f"frame_{i:02d}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    frames = load_frames(tmp_path, count=3)
    assert [tuple(np.asarray(f)[0, 0]) for f in frames] == [COLOURS[i] for i in (1, 3, 5)]


def test_list_of_arrays_images_and_paths(tmp_path):
    Image.fromarray(solid(COLOURS[2])).save(tmp_path / "a.jpg")
    source = [solid(COLOURS[0]), Image.fromarray(solid(COLOURS[1])).convert("L"), tmp_path / "a.jpg"]
    frames = load_frames(source, count=8)
    assert len(frames) == 3 and all(f.mode == "RGB" for f in frames)
    assert tuple(np.asarray(frames[0])[0, 0]) == COLOURS[0]
    assert load_frames([solid(c) for c in COLOURS], count=2)[1].getpixel((0, 0)) == COLOURS[9]


def test_unreadable_videos_name_the_file_and_the_formats(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    (tmp_path / "empty.mp4").touch()
    for path in (text, tmp_path / "empty.mp4"):
        with pytest.raises(FrameError, match=rf"{path.name} could not be decoded.*\.mp4.*folder of images"):
            load_frames(path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    with wave.open(str(tmp_path / "beep.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(b"\x00\x01" * 800)
    with pytest.raises(FrameError, match="beep.wav has no video stream"):
        load_frames(tmp_path / "beep.wav")


def test_video_stream_without_frames(tmp_path):
    # A Matroska file cut just inside its first cluster: the header declares the stream, no frame follows.
    data = write_video([solid(c) for c in COLOURS], tmp_path / "full.mkv").read_bytes()
    path = tmp_path / "headless.mkv"
    path.write_bytes(data[:data.index(bytes.fromhex("1F43B675")) + 8])
    with pytest.raises(FrameError, match="headless.mkv has a video stream but no frames"):
        load_frames(path)


def test_missing_empty_and_bad_sources(tmp_path, video):
    with pytest.raises(FrameError, match="missing.mp4 does not exist"):
        load_frames(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FrameError, match="holds no images"):
        load_frames(tmp_path / "empty")
    with pytest.raises(FrameError, match="empty"):
        load_frames([])
    with pytest.raises(FrameError, match="at least one frame"):
        load_frames(video, count=0)
    with pytest.raises(FrameError, match="HxWx3 uint8"):
        load_frames([np.zeros((4, 4), np.float32)])
    with pytest.raises(FrameError, match="differ in size"):
        write_video([solid(COLOURS[0]), solid(COLOURS[1], size=(8, 8))], tmp_path / "x.mp4")
    with pytest.raises(FrameError, match="name the file .mp4"):
        write_video([solid(COLOURS[0])], tmp_path / "x.webm")
