"""Video and audio with ffmpeg, on clips ffmpeg makes here (lavfi test sources), checked with ffprobe."""

import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from engine import converters
from engine.converters import ConversionFailed, InvalidOptions


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=60)


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True, check=True, timeout=30,
    ).stdout
    return json.loads(out)


def stream(info: dict, kind: str) -> dict | None:
    return next((s for s in info["streams"] if s["codec_type"] == kind), None)


def duration(info: dict) -> float:
    return float(info["format"]["duration"])


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two-second clips: a video with sound, a silent video, and the sound alone in every audio format."""
    folder = tmp_path_factory.mktemp("clips")
    picture = ["-f", "lavfi", "-i", "testsrc=duration=2:size=160x120:rate=10"]
    sound = ["-f", "lavfi", "-i", "sine=frequency=440:duration=2"]
    made = {name: folder / f"sample.{name}" for name in ("mp4", "webm", "wav", "mp3", "flac", "ogg", "m4a")}
    ffmpeg(*picture, *sound, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(made["mp4"]))
    ffmpeg("-i", str(made["mp4"]), "-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "40", "-deadline", "realtime",
           "-c:a", "libopus", str(made["webm"]))
    ffmpeg(*sound, str(made["wav"]))
    for name in ("mp3", "flac", "ogg", "m4a"):
        ffmpeg("-i", str(made["wav"]), str(made[name]))
    made["silent.mp4"] = folder / "silent.mp4"
    ffmpeg(*picture, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(made["silent.mp4"]))
    return made


def convert(src: Path, workdir: Path, input_format: str, output_format: str, progress=None, **params) -> Path:
    conversion = converters.find(input_format, output_format)
    assert conversion is not None, f"{input_format} → {output_format} is not registered"
    options = converters.clean_options(conversion, params)
    workdir.mkdir(exist_ok=True)
    [out] = conversion.run(src, workdir, output_format=output_format, options=options, stem="result", progress=progress)
    assert out.name == f"result.{output_format}"
    return out


@pytest.mark.parametrize(
    ("input_format", "output_format", "video_codec", "audio_codec"),
    [
        ("mp4", "webm", "vp9", "opus"),
        ("mp4", "mkv", "h264", "aac"),
        ("mp4", "mov", "h264", "aac"),
        ("webm", "mp4", "h264", "aac"),
    ],
)
def test_it_converts_video_to_video_with_the_container_default_codecs(
    tmp_path: Path, clips: dict[str, Path], input_format: str, output_format: str, video_codec: str, audio_codec: str
) -> None:
    out = convert(clips[input_format], tmp_path / "out", input_format, output_format)

    info = ffprobe(out)
    assert stream(info, "video")["codec_name"] == video_codec
    assert (stream(info, "video")["width"], stream(info, "video")["height"]) == (160, 120)
    assert stream(info, "audio")["codec_name"] == audio_codec
    assert duration(info) == pytest.approx(2, abs=0.15)


@pytest.mark.parametrize(
    ("input_format", "output_format", "codec"),
    [
        ("mp4", "mp3", "mp3"),
        ("mp4", "wav", "pcm_s16le"),
        ("webm", "ogg", "vorbis"),
        ("mp4", "flac", "flac"),
        ("mp4", "m4a", "aac"),
        ("wav", "mp3", "mp3"),
        ("mp3", "wav", "pcm_s16le"),
        ("flac", "ogg", "vorbis"),
        ("ogg", "m4a", "aac"),
        ("m4a", "flac", "flac"),
    ],
)
def test_it_extracts_and_converts_sound(
    tmp_path: Path, clips: dict[str, Path], input_format: str, output_format: str, codec: str
) -> None:
    out = convert(clips[input_format], tmp_path / "out", input_format, output_format)

    info = ffprobe(out)
    assert [s["codec_type"] for s in info["streams"]] == ["audio"]
    assert stream(info, "audio")["codec_name"] == codec
    assert duration(info) == pytest.approx(2, abs=0.15)


def test_it_makes_an_animated_gif_of_a_video(tmp_path: Path, clips: dict[str, Path]) -> None:
    out = convert(clips["mp4"], tmp_path / "out", "mp4", "gif", width=80, fps=5)

    with Image.open(out) as gif:
        assert gif.format == "GIF"
        assert gif.size == (80, 60)
        assert gif.n_frames == 10  # two seconds at 5 frames a second
        assert gif.info.get("loop") == 0


def test_it_applies_codec_quality_size_and_frame_rate(tmp_path: Path, clips: dict[str, Path]) -> None:
    out = convert(
        clips["mp4"], tmp_path / "out", "mp4", "mp4",
        video_codec="x265", crf=30, width=81, fps=5, audio_codec="mp3", audio_bitrate="64",
    )

    info = ffprobe(out)
    video, audio = stream(info, "video"), stream(info, "audio")
    assert video["codec_name"] == "hevc"
    assert video["codec_tag_string"] == "hvc1"
    assert (video["width"], video["height"]) == (80, 60)  # even sides, aspect kept
    assert video["r_frame_rate"] == "5/1"
    assert audio["codec_name"] == "mp3"
    assert int(audio["bit_rate"]) == pytest.approx(64000, rel=0.05)


def test_it_drops_the_sound_and_copies_streams_when_asked(tmp_path: Path, clips: dict[str, Path]) -> None:
    silent = convert(clips["mp4"], tmp_path / "a", "mp4", "mkv", audio_codec="none")
    copied = convert(clips["mp4"], tmp_path / "b", "mp4", "mkv", video_codec="copy", audio_codec="copy")

    assert [s["codec_type"] for s in ffprobe(silent)["streams"]] == ["video"]
    info = ffprobe(copied)
    assert (stream(info, "video")["codec_name"], stream(info, "audio")["codec_name"]) == ("h264", "aac")


def test_it_trims_to_the_asked_part(tmp_path: Path, clips: dict[str, Path]) -> None:
    video = convert(clips["mp4"], tmp_path / "a", "mp4", "webm", trim_start="0.5", trim_end="00:00:01.5")
    sound = convert(clips["wav"], tmp_path / "b", "wav", "flac", trim_start="1")

    assert duration(ffprobe(video)) == pytest.approx(1, abs=0.15)
    assert duration(ffprobe(sound)) == pytest.approx(1, abs=0.05)


def test_it_reports_progress_as_ffmpeg_advances(tmp_path: Path, clips: dict[str, Path]) -> None:
    reported: list[int] = []

    convert(clips["mp4"], tmp_path / "out", "mp4", "mov", progress=reported.append)

    assert reported, "no progress was reported"
    assert reported == sorted(set(reported))
    assert 0 <= reported[0] and reported[-1] >= 90 and reported[-1] <= 99


@pytest.mark.parametrize(
    ("output_format", "params", "field"),
    [
        ("mp4", {"trim_start": "5", "trim_end": "00:00:04"}, "trim_end"),
        ("mp4", {"trim_start": "1 minute"}, "trim_start"),
        ("mp3", {"trim_end": "1:75"}, "trim_end"),
        ("mp4", {"crf": 60}, "crf"),
        ("webm", {"crf": 64}, "crf"),
        ("mp4", {"video_codec": "vp9"}, "video_codec"),
        ("mkv", {"video_codec": "copy", "width": 320}, "video_codec"),
        ("webm", {"audio_codec": "aac"}, "audio_codec"),
        ("mkv", {"audio_codec": "flac", "audio_bitrate": 128}, "audio_bitrate"),
        ("m4a", {"audio_codec": "alac", "audio_bitrate": 128}, "audio_bitrate"),
        ("mp3", {"audio_bitrate": 1000}, "audio_bitrate"),
        ("mp4", {"width": 0}, "width"),
        ("gif", {"fps": "fast"}, "fps"),
    ],
)
def test_it_rejects_options_that_do_not_fit(output_format: str, params: dict, field: str) -> None:
    conversion = converters.find("mp4", output_format)

    with pytest.raises(InvalidOptions) as error:
        converters.clean_options(conversion, params)

    assert list(error.value.errors) == [field]
    assert field in error.value.errors[field][0]


def test_it_lists_the_options_each_output_takes() -> None:
    mp4 = {o.name: o for o in converters.find("mp4", "mp4").options}
    wav = {o.name for o in converters.find("mp4", "wav").options}

    assert mp4["video_codec"].possible_values == ("x264", "x265", "av1", "copy")
    assert mp4["video_codec"].default == "x264"
    assert "none" in mp4["audio_codec"].possible_values
    assert {"crf", "audio_bitrate", "width", "height", "fps", "trim_start", "trim_end"} <= set(mp4)
    assert wav == {"trim_start", "trim_end"}  # PCM: no codec choice and no bitrate
    assert converters.find("wav", "mp4") is None  # no picture to make a video of


def test_it_lists_media_conversions_as_installed() -> None:
    listed = {(c.input_format, c.output_format) for c in converters.available("convert") if c.engine == "ffmpeg"}

    assert {("mp4", "webm"), ("mov", "mp3"), ("mkv", "gif"), ("flac", "m4a"), ("wav", "ogg")} <= listed
    assert converters.find("mp4", "webm").engine_version


def test_it_reports_a_damaged_file(tmp_path: Path, clips: dict[str, Path]) -> None:
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clips["mp4"].read_bytes()[:3000])

    for src in (garbage, truncated):
        with pytest.raises(ConversionFailed) as error:
            convert(src, tmp_path / "out", "mp4", "webm")
        assert error.value.code == "INVALID_FILE"
        assert "not a valid MP4 file" in error.value.message


def test_it_reports_an_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")

    with pytest.raises(ConversionFailed) as error:
        convert(empty, tmp_path / "out", "wav", "mp3")

    assert error.value.code == "INVALID_FILE"
    assert "empty" in error.value.message


def test_it_reports_a_mislabelled_file(tmp_path: Path, clips: dict[str, Path]) -> None:
    with pytest.raises(ConversionFailed) as error:
        convert(clips["mp3"], tmp_path / "out", "mp4", "webm")

    assert error.value.code == "INVALID_FILE"
    assert error.value.message == "The file is not an MP4 file (it holds mp3 data); check its extension."


def test_it_explains_a_missing_picture_or_sound_track(tmp_path: Path, clips: dict[str, Path]) -> None:
    with pytest.raises(ConversionFailed) as no_sound:
        convert(clips["silent.mp4"], tmp_path / "a", "mp4", "mp3")
    with pytest.raises(ConversionFailed) as no_picture:
        convert(clips["m4a"], tmp_path / "b", "mp4", "gif")

    assert no_sound.value.message == "The MP4 file has no sound to convert to MP3."
    assert no_picture.value.message == "The MP4 file has no picture to convert to GIF."


def test_it_rejects_a_trim_past_the_end(tmp_path: Path, clips: dict[str, Path]) -> None:
    with pytest.raises(ConversionFailed) as error:
        convert(clips["wav"], tmp_path / "out", "wav", "mp3", trim_start="00:05")

    assert error.value.code == "INVALID_OPTIONS"
    assert "lasts 2 seconds" in error.value.message


def _ffmpeg_processes_writing(path: Path) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if str(path).encode() in args:
            found.append(cmdline.parent.name)
    return found


def test_it_stops_ffmpeg_at_the_timeout_and_leaves_no_process(tmp_path: Path, settings) -> None:
    settings.ENGINE_MEDIA_TIMEOUT = 0.5
    long = tmp_path / "long.mkv"
    # Lossless and fast to make, slow to squeeze into AV1 at full quality.
    ffmpeg("-f", "lavfi", "-i", "testsrc2=duration=60:size=640x480:rate=30", "-c:v", "ffv1", str(long))

    with pytest.raises(ConversionFailed) as error:
        convert(long, tmp_path / "out", "mkv", "webm", video_codec="vp9", crf=0)

    assert error.value.code == "TIMEOUT"
    assert error.value.message == "The conversion took longer than 0.5 seconds and was stopped."
    assert _ffmpeg_processes_writing(tmp_path / "out" / "result.webm") == []


@pytest.mark.django_db
def test_the_runner_passes_ffmpeg_progress_on_as_each_files_share(tmp_path: Path, clips: dict[str, Path]) -> None:
    from engine.models import Task
    from engine.operations import process
    from engine.storage import store_file

    upload = Task.objects.create(operation="import/upload", status=Task.Status.FINISHED)
    for name in ("first.mp4", "second.mp4"):
        store_file(upload, name, clips["mp4"]).save()
    task = Task.objects.create(
        operation="convert", status=Task.Status.PROCESSING, payload={"output_format": "mp3"},
        depends_on=[str(upload.pk)],
    )
    reported: list[int] = []

    outcome = process(task, tmp_path, reported.append)

    assert sorted(f.filename for f in outcome.files) == ["first.mp3", "second.mp3"]
    first, second = reported[: reported.index(50) + 1], reported[reported.index(50) + 1 :]
    assert first[0] < 50 and any(0 < p < 50 for p in first[:-1])  # ffmpeg's own reports for file 1
    assert any(50 < p < 100 for p in second) and second[-1] < 100  # the task's end writes 100 %
    assert reported == sorted(reported)
