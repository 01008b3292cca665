"""Video and audio with ffmpeg: video → video, video → audio, audio → audio, and video → gif.

ffprobe reads the input first: it tells a damaged or mislabelled file apart before ffmpeg starts,
and its duration turns ffmpeg's `-progress` reports into a percent. Both run in the engine's
sandbox (the task's folder, no network) and read their input through the `file` protocol only: a
video can carry a playlist (HLS, concat) naming other files or URLs, which ffmpeg would follow.
ffmpeg runs in a process group of its own and is killed, with anything it started, after
ENGINE_MEDIA_TIMEOUT seconds or when its task is cancelled.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.converters import Conversion, ConversionFailed, Option, normalize_format, require_content
from engine.converters.sandbox import Sandbox
from engine.converters.tools import kill_group, popen, run_tool, setting, timeout_failure, version_line
from engine.processes import untrack

logger = logging.getLogger(__name__)

DEFAULT_MEDIA_TIMEOUT = 3600.0
PROBE_TIMEOUT = 60.0
# Inputs are local files; no playlist inside one may open anything else (another file is still
# a file, which the sandbox keeps to the task's folder, but never a URL or a device).
INPUT_PROTOCOLS = ["-protocol_whitelist", "file"]

VIDEO: dict[str, str] = {"mp4": "MP4", "webm": "WebM", "mkv": "MKV", "mov": "MOV"}
AUDIO: dict[str, str] = {"mp3": "MP3", "wav": "WAV", "ogg": "OGG", "flac": "FLAC", "m4a": "M4A"}
LABELS: dict[str, str] = {**VIDEO, **AUDIO, "gif": "GIF"}
# The demuxer ffprobe must name for each input format, so that a renamed file is reported as
# mislabelled. Container families share one demuxer (mp4/mov/m4a, mkv/webm), which is fine:
# ffmpeg reads them alike.
DEMUXERS: dict[str, str] = {
    "mp4": "mov", "mov": "mov", "m4a": "mov", "mkv": "matroska", "webm": "matroska",
    "mp3": "mp3", "wav": "wav", "ogg": "ogg", "flac": "flac",
}

# Our codec names (CloudConvert's) → ffmpeg encoders, and what each container can hold.
VIDEO_ENCODERS: dict[str, str] = {
    "x264": "libx264", "x265": "libx265", "vp8": "libvpx", "vp9": "libvpx-vp9", "av1": "libsvtav1",
    "prores": "prores_ks", "copy": "copy",
}
AUDIO_ENCODERS: dict[str, str] = {
    "aac": "aac", "mp3": "libmp3lame", "opus": "libopus", "vorbis": "libvorbis", "flac": "flac",
    "alac": "alac", "pcm": "pcm_s16le", "copy": "copy",
}
VIDEO_CODECS: dict[str, tuple[str, ...]] = {  # the first is the default
    "mp4": ("x264", "x265", "av1", "copy"),
    "mov": ("x264", "x265", "prores", "copy"),
    "mkv": ("x264", "x265", "vp9", "av1", "copy"),
    "webm": ("vp9", "vp8", "av1", "copy"),
}
AUDIO_CODECS: dict[str, tuple[str, ...]] = {  # "none" drops the sound track
    "mp4": ("aac", "mp3", "copy", "none"),
    "mov": ("aac", "alac", "pcm", "copy", "none"),
    "mkv": ("aac", "opus", "vorbis", "flac", "mp3", "copy", "none"),
    "webm": ("opus", "vorbis", "copy", "none"),
    "mp3": ("mp3",),
    "wav": ("pcm",),
    "ogg": ("vorbis", "opus"),
    "flac": ("flac",),
    "m4a": ("aac", "alac"),
}
LOSSY_AUDIO = frozenset({"aac", "mp3", "opus", "vorbis"})
# Highest crf each encoder accepts (x264/x265 stop at 51; the VPx and AV1 encoders at 63).
CRF_LIMITS: dict[str, int] = {"x264": 51, "x265": 51, "vp8": 63, "vp9": 63, "av1": 63}
# Encoder settings that make a sensible file: players want 4:2:0, VP9 and AV1 need a quality target.
VIDEO_ARGS: dict[str, list[str]] = {
    "x264": ["-pix_fmt", "yuv420p"],
    "x265": ["-pix_fmt", "yuv420p", "-x265-params", "log-level=error"],
    "vp8": ["-pix_fmt", "yuv420p", "-b:v", "4M", "-deadline", "good", "-cpu-used", "4"],
    "vp9": ["-pix_fmt", "yuv420p", "-b:v", "0", "-row-mt", "1", "-deadline", "good", "-cpu-used", "4"],
    "av1": ["-pix_fmt", "yuv420p", "-preset", "8"],
    "prores": ["-profile:v", "2", "-pix_fmt", "yuv422p10le"],
    "copy": [],
}
DEFAULT_CRF: dict[str, int] = {"vp8": 10, "vp9": 31, "av1": 35}  # x264/x265 have good defaults of their own
GIF_FPS = 10.0

TIME = r"\d+(?:\.\d+)?|(?:\d+:)?[0-5]?\d:[0-5]?\d(?:\.\d+)?"

CRF = Option(
    "crf", "integer", minimum=0, maximum=63,
    description="Constant quality: lower is better and larger (0–51 for x264/x265, 0–63 for vp8, vp9, av1).",
)
AUDIO_BITRATE = Option(
    "audio_bitrate", "integer", minimum=32, maximum=320,
    description="Audio bitrate in kbit/s for lossy codecs (aac, mp3, opus, vorbis).",
)
WIDTH = Option("width", "integer", minimum=2, maximum=7680, description="Output width in pixels.")
HEIGHT = Option("height", "integer", minimum=2, maximum=4320, description="Output height in pixels.")
FPS = Option("fps", "float", minimum=1, maximum=120, description="Frames per second of the output.")
TRIM_START = Option(
    "trim_start", "string", pattern=TIME,
    description='Start of the part to keep, in seconds ("12.5") or as hh:mm:ss ("00:01:02").',
)
TRIM_END = Option(
    "trim_end", "string", pattern=TIME,
    description='End of the part to keep, in seconds ("42") or as hh:mm:ss ("00:02:00").',
)
TRIM_OPTIONS = (TRIM_START, TRIM_END)


def _codec_option(name: str, choices: tuple[str, ...]) -> Option:
    kind = "Video" if name == "video_codec" else "Audio"
    return Option(
        name, "enum", default=choices[0], possible_values=choices,
        description=f"{kind} codec; copy keeps the input's stream as it is"
        + (", none drops the sound." if "none" in choices else "."),
    )


def parse_time(value: str) -> float:
    """Seconds in "90", "1:30", "00:01:30.5" (the syntax TIME admits)."""
    seconds = 0.0
    for part in value.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def check_options(output_format: str, options: dict) -> dict[str, list[str]]:
    """The rules that tie options together, for one output format."""
    errors: dict[str, list[str]] = {}
    start, end = options.get("trim_start"), options.get("trim_end")
    if start and end and parse_time(end) <= parse_time(start):
        errors["trim_end"] = ["trim_end must come after trim_start."]
    video = options.get("video_codec")
    if video == "copy":
        changed = [name for name in ("crf", "width", "height", "fps") if options.get(name) is not None]
        if changed:
            errors["video_codec"] = [
                f"video_codec copy keeps the video as it is, so it cannot apply {', '.join(changed)}; choose a codec."
            ]
    elif video and options.get("crf") is not None and options["crf"] > CRF_LIMITS.get(video, 63):
        errors["crf"] = [f"crf must be between 0 and {CRF_LIMITS[video]} with {video}."]
    audio = options.get("audio_codec") or AUDIO_CODECS.get(output_format, ("none",))[0]
    if options.get("audio_bitrate") is not None and audio not in LOSSY_AUDIO:
        lossy = ", ".join(sorted(LOSSY_AUDIO))
        errors["audio_bitrate"] = [f"audio_bitrate applies to lossy codecs only ({lossy}), not {audio}."]
    return errors


def media_timeout() -> float:
    return float(setting("ENGINE_MEDIA_TIMEOUT", DEFAULT_MEDIA_TIMEOUT))


@functools.cache
def installed() -> bool:
    return bool(shutil.which("ffmpeg") and shutil.which("ffprobe"))


@functools.cache
def ffmpeg_version() -> str:
    words = version_line(shutil.which("ffmpeg") or "ffmpeg", "-version").split()  # "ffmpeg version 5.1.9-0 ..."
    return words[2] if len(words) > 2 else ""


@dataclass(frozen=True)
class Probe:
    duration: float | None
    video: bool
    audio: bool


def _article(label: str) -> str:
    return "an" if label[0] in "AEFHILMNORSX" else "a"


def probe(src: Path, input_format: str) -> Probe:
    """What ffprobe sees in src, or ConversionFailed when it is not a readable file of input_format."""
    label = LABELS[input_format]
    require_content(src, label)
    result = run_tool(
        ["ffprobe", "-v", "error", *INPUT_PROTOCOLS, "-of", "json", "-show_entries",
         "format=format_name,duration:stream=codec_type:stream_disposition=attached_pic", str(src)],
        timeout=PROBE_TIMEOUT,
        sandbox=Sandbox.of(src.parent),
    )
    try:
        data = json.loads(result.stdout or b"{}")
    except ValueError:
        data = {}
    container = data.get("format") or {}
    if result.returncode != 0 or not container:
        raise ConversionFailed(
            "INVALID_FILE", f"The file is not a valid {label} file: it is damaged or holds something else."
        )
    names = str(container.get("format_name", "")).split(",")
    if DEMUXERS[input_format] not in names:
        raise ConversionFailed(
            "INVALID_FILE",
            f"The file is not {_article(label)} {label} file (it holds {names[0]} data); check its extension.",
        )
    streams = data.get("streams") or []
    try:
        duration = float(container["duration"])
    except (KeyError, TypeError, ValueError):
        duration = None
    # Cover art in music files is a "video" stream too; it is not a picture to convert.
    pictures = [
        s for s in streams if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    return Probe(duration=duration, video=bool(pictures), audio=any(s.get("codec_type") == "audio" for s in streams))


def _even(value: int) -> int:
    return max(2, value - value % 2)


def _scale(options: dict, *, even: bool) -> str | None:
    width, height = options.get("width"), options.get("height")
    if not width and not height:
        # 4:2:0 video needs even sides; a 161×121 source would make the encoder fail.
        return "scale=trunc(iw/2)*2:trunc(ih/2)*2" if even else None
    if even:
        return f"scale={_even(width) if width else -2}:{_even(height) if height else -2}"
    return f"scale={width or -1}:{height or -1}:flags=lanczos"


def _audio_args(codec: str, options: dict) -> list[str]:
    args = ["-c:a", AUDIO_ENCODERS[codec]]
    if options.get("audio_bitrate"):
        args += ["-b:a", f"{options['audio_bitrate']}k"]
    return args


def _output_args(target: str, options: dict, media: Probe) -> list[str]:
    fps = options.get("fps")
    if target == "gif":
        # One palette made for this clip instead of the web-safe default: far truer colours.
        filters = [f"fps={fps or GIF_FPS:g}", _scale(options, even=False)]
        chain = ",".join(f for f in filters if f)
        return ["-map", "0:v:0", "-an", "-filter_complex",
                f"[0:v:0]{chain},split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse", "-loop", "0"]
    if target in AUDIO:
        return ["-map", "0:a:0", "-vn", *_audio_args(options.get("audio_codec") or AUDIO_CODECS[target][0], options)]
    codec = options.get("video_codec") or VIDEO_CODECS[target][0]
    args = ["-map", "0:v:0", "-c:v", VIDEO_ENCODERS[codec], *VIDEO_ARGS[codec]]
    if codec != "copy":
        filters = [f"fps={fps:g}" if fps else None, _scale(options, even=True)]
        args += ["-vf", ",".join(f for f in filters if f)]
        crf = options.get("crf") if options.get("crf") is not None else DEFAULT_CRF.get(codec)
        if crf is not None and codec in CRF_LIMITS:
            args += ["-crf", str(crf)]
    if codec == "x265" and target in ("mp4", "mov"):
        args += ["-tag:v", "hvc1"]  # Apple players refuse HEVC tagged hev1
    audio = options.get("audio_codec") or AUDIO_CODECS[target][0]
    if media.audio and audio != "none":
        args += ["-map", "0:a:0", *_audio_args(audio, options)]
    return args


def _run_ffmpeg(
    args: list[str], *, sandbox: Sandbox, seconds: float | None, progress: Callable[[int], None] | None
) -> tuple[int, str]:
    """Exit status and the end of ffmpeg's error output; percent reported as out_time advances."""
    timeout = media_timeout()
    timed_out = threading.Event()
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty ffmpeg cannot block on it
        process = popen(args, sandbox=sandbox, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors)

        def expire() -> None:
            timed_out.set()
            kill_group(process)

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            reported = -1
            for line in process.stdout:
                if progress is None or not seconds or not line.startswith(b"out_time_us="):
                    continue
                try:
                    done = int(line.split(b"=", 1)[1]) / 1_000_000
                except ValueError:  # "N/A" before the first frame
                    continue
                percent = max(0, min(99, int(100 * done / seconds)))
                if percent > reported:
                    reported = percent
                    progress(percent)
            process.wait()
        finally:
            timer.cancel()
            kill_group(process)
            untrack(process)
            process.stdout.close()
        if timed_out.is_set():
            raise timeout_failure(timeout)
        errors.seek(0, 2)
        errors.seek(max(0, errors.tell() - 4000))
        return process.returncode, errors.read().decode(errors="replace")


def convert_media(
    src: Path,
    workdir: Path,
    *,
    input_format: str,
    output_format: str,
    options: dict,
    stem: str,
    progress: Callable[[int], None] | None = None,
) -> list[Path]:
    target = normalize_format(output_format)
    label = LABELS[input_format]
    media = probe(src, input_format)
    if target in AUDIO and not media.audio:
        raise ConversionFailed("INVALID_FILE", f"The {label} file has no sound to convert to {LABELS[target]}.")
    if target not in AUDIO and not media.video:
        raise ConversionFailed("INVALID_FILE", f"The {label} file has no picture to convert to {LABELS[target]}.")

    start = parse_time(options["trim_start"]) if options.get("trim_start") else 0.0
    end = parse_time(options["trim_end"]) if options.get("trim_end") else None
    if media.duration is not None and start >= media.duration:
        raise ConversionFailed(
            "INVALID_OPTIONS", f"trim_start is past the end of the input, which lasts {media.duration:g} seconds."
        )
    if media.duration is not None:
        end = min(end, media.duration) if end is not None else media.duration

    dest = workdir / f"{stem}.{output_format.lower()}"
    args = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y"]
    if start:
        args += ["-ss", f"{start:g}"]  # before -i: seeks instead of decoding everything up to there
    args += [*INPUT_PROTOCOLS, "-i", str(src), *_output_args(target, options, media)]
    if end is not None and options.get("trim_end"):
        args += ["-t", f"{end - start:g}"]
    if target in ("mp4", "mov", "m4a"):
        args += ["-movflags", "+faststart"]  # playable while it downloads
    args += ["-sn", "-dn", "-progress", "pipe:1", "-nostats", str(dest)]

    status, detail = _run_ffmpeg(
        args,
        sandbox=Sandbox.of(src.parent, workdir),
        seconds=(end - start) if end is not None else None,
        progress=progress,
    )
    if status != 0 or not dest.exists() or dest.stat().st_size == 0:
        logger.info("ffmpeg failed on %s → %s: %s", input_format, target, detail)
        if "copy" in (options.get("video_codec"), options.get("audio_codec")):
            message = (
                f"The streams of this {label} file cannot be copied into {LABELS[target]}; "
                "choose a codec instead of copy."
            )
        elif re.search(r"Invalid data|corrupt|Error while decoding|invalid frame", detail, re.IGNORECASE):
            raise ConversionFailed("INVALID_FILE", f"The {label} file is damaged: ffmpeg could not decode it.")
        else:
            message = f"ffmpeg could not convert this {label} file to {LABELS[target]}."
        raise ConversionFailed("CONVERSION_FAILED", message)
    return [dest]


def _options(target: str) -> tuple[Option, ...]:
    audio_codecs = AUDIO_CODECS.get(target, ())
    audio: tuple[Option, ...] = ()
    if len(audio_codecs) > 1:
        audio += (_codec_option("audio_codec", audio_codecs),)
    if LOSSY_AUDIO & set(audio_codecs):
        audio += (AUDIO_BITRATE,)
    if target == "gif":
        return (WIDTH, HEIGHT, FPS, *TRIM_OPTIONS)
    if target in AUDIO:
        return (*audio, *TRIM_OPTIONS)
    return (_codec_option("video_codec", VIDEO_CODECS[target]), CRF, *audio, WIDTH, HEIGHT, FPS, *TRIM_OPTIONS)


def _conversion(input_format: str, output_format: str) -> Conversion:
    return Conversion(
        operation="convert",
        input_format=input_format,
        output_format=output_format,
        engine="ffmpeg",
        engine_version=ffmpeg_version(),
        group="audio" if output_format in AUDIO else "image" if output_format == "gif" else "video",
        options=_options(output_format),
        run=functools.partial(convert_media, input_format=input_format),
        is_installed=installed,
        reports_progress=True,
        check=functools.partial(check_options, output_format),
    )


CONVERSIONS: list[Conversion] = [
    *(_conversion(source, target) for source in VIDEO for target in [*VIDEO, *AUDIO, "gif"]),
    *(_conversion(source, target) for source in AUDIO for target in AUDIO),
]
