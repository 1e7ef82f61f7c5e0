"""A folder of JPEG/PNG frames as :class:`~fusewatch.core.events.CameraFrame` events, the bytes unchanged.

The time of a frame is its EXIF ``DateTimeOriginal`` (with ``SubSecTimeOriginal`` and ``OffsetTimeOriginal``
when present; a time without an offset is read in the time zone given, UTC by default) or its file name (a
:class:`~connectors.ingest.files.timing.NamePattern`, which may also carry ``{asset_id}`` and ``{camera_id}``).
Only the image header is decoded (size, format); an image that cannot be opened is reported and skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from PIL import Image, UnidentifiedImageError

from connectors.ingest.files.problems import ProblemReport, match_name
from connectors.ingest.files.timing import NamePattern, aware_ns, time_zone
from fusewatch.core.errors import InvalidEventError
from fusewatch.core.events import MAX_FRAME_BYTES, CameraFrame, make_event

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
EXIF_IFD = 0x8769
DATE_TIME_ORIGINAL, SUBSEC_TIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 36867, 37521, 36881
DATE_TIME = 306
_ENCODING: dict[str, Literal["jpeg", "png"]] = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png"}


@dataclass(frozen=True)
class ImageOptions:
    """How frames are read: ``time_from`` ``exif`` or ``name`` (then ``name_pattern`` is needed)."""

    asset_id: str | None = None
    camera_id: str = "cam"
    time_from: Literal["exif", "name"] = "exif"
    name_pattern: NamePattern | None = None
    timezone: str = "UTC"


def image_files(paths: Sequence[Path]) -> list[Path]:
    """The image files of ``paths`` (files, or folders searched recursively), in name order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            found.append(path)
    return found


def exif_time(image: Image.Image, zone: str = "UTC") -> int | None:
    """Nanoseconds of an image's EXIF DateTimeOriginal (or DateTime), ``None`` when it has neither.

    Raises ValueError for a tag that is not an EXIF date (``YYYY:MM:DD HH:MM:SS``).
    """
    exif = image.getexif()
    if not exif and image.format == "PNG":
        image.load()  # a PNG's eXIf chunk may follow the pixels
        exif = image.getexif()
    details = exif.get_ifd(EXIF_IFD)
    text = details.get(DATE_TIME_ORIGINAL) or exif.get(DATE_TIME)
    if not text:
        return None
    text = str(text).strip("\x00 ")
    moment = datetime.strptime(text, "%Y:%m:%d %H:%M:%S")
    offset = str(details.get(OFFSET_TIME_ORIGINAL) or "").strip("\x00 ")
    if offset:
        moment = datetime.strptime(f"{text} {offset.replace(':', '')}", "%Y:%m:%d %H:%M:%S %z")
    fraction = str(details.get(SUBSEC_TIME_ORIGINAL) or "").strip("\x00 ")
    nanoseconds = int(fraction[:9].ljust(9, "0")) if fraction.isdigit() else 0
    return aware_ns(moment, time_zone(zone)) + nanoseconds


class ImageReader:
    """Reads image files into frames; problems go to ``report`` (the image is skipped)."""

    def __init__(self, options: ImageOptions, report: ProblemReport,
                 progress: Callable[[int], object] | None = None) -> None:
        self.options, self.report = options, report
        self.progress = progress or (lambda n: None)
        time_zone(options.timezone)  # a bad name fails before any file is read

    def read(self, paths: Sequence[Path]) -> Iterator[CameraFrame]:
        for path in paths:
            frame = self._frame(path)
            if frame is not None:
                yield frame

    def _frame(self, path: Path) -> CameraFrame | None:
        options = self.options
        fields: dict[str, str] = {}
        ts: int | None = None
        found = match_name(options.name_pattern, path, self.report)
        if found is False:
            return None
        if found is not None:
            fields, ts = found.fields, found.ts
        try:
            size = path.stat().st_size
            if size > MAX_FRAME_BYTES:
                self.report.add(path, None, None, f"{size} bytes, more than a frame may hold ({MAX_FRAME_BYTES})")
                return None
            data = path.read_bytes()
            self.progress(len(data))
            with Image.open(path) as image:
                encoding = _ENCODING.get(image.format or "")
                width, height = image.size
                if options.time_from == "exif":
                    try:
                        ts = exif_time(image, options.timezone)
                    except ValueError as exc:
                        self.report.add(path, None, None, f"EXIF DateTimeOriginal: {exc}")
                        return None
                    if ts is None:
                        self.report.add(path, None, None, "no EXIF DateTimeOriginal: use --time-from name with a"
                                        " --time-pattern")
                        return None
        except (OSError, UnidentifiedImageError) as exc:
            self.report.add(path, None, None, f"cannot be read as an image: {exc}")
            return None
        if encoding is None:
            self.report.add(path, None, None, "neither a JPEG nor a PNG image")
            return None
        if ts is None:
            self.report.add(path, None, None, "no time: the --time-pattern has no date codes")
            return None
        asset = fields.get("asset_id") or options.asset_id
        if asset is None:
            self.report.add(path, None, None, "no asset id: give --asset or {asset_id} in --time-pattern")
            return None
        try:
            return make_event(CameraFrame, asset_id=asset, camera_id=fields.get("camera_id") or options.camera_id,
                              ts=ts, width=width, height=height, encoding=encoding, data=data)
        except InvalidEventError as exc:
            self.report.add(path, None, None, str(exc))
            return None
