"""Frame input/output for ``stpr enhance``: the public names, re-exported from the modules below.

- :mod:`stpr.io.common`: :class:`Frame`, :class:`MediaInfo`, the video/image extension sets,
  colour constants, :func:`describe_os_error` and other small shared helpers.
- :mod:`stpr.io.reading`: :func:`open_input` and the :class:`FrameReader` for a video file, a
  folder of images or a single image (8-bit RGB as stored, no rotation applied, with timestamps).
- :mod:`stpr.io.writing`: :func:`open_output` and the :class:`FrameWriter` for a video file, a
  folder of PNGs or a single image; output-path checks (:func:`check_output_target`); the
  write-to-a-temporary-name-then-rename logic, so an interrupted run never leaves a
  half-written file that looks finished.
- :mod:`stpr.io.encoding`: which encoder an output gets (:func:`resolve_video_codec`), its
  options, pixel format and colour tags, and the RGB to YUV conversion.
- :mod:`stpr.io.audio`: copying the source's audio/subtitle streams into a video output,
  re-encoding audio the container cannot hold.
- :mod:`stpr.io.segments`: segments of a resumable run and their join
  (:func:`open_segment_writer`, :func:`concat_segments`, :func:`segment_container_suffix`).

Colour handling: YUV video is converted to RGB with the matrix the stream declares (BT.709,
BT.601 or BT.2020; untagged streams use BT.709 from 720 lines up) and the writer converts back
with the same matrix and range and tags the output accordingly, so a pass-through round trip
does not shift colours. HDR video (PQ or HLG transfer) is refused (InputError): stpr does not
tone-map, and an HDR picture in an SDR-tagged file would be mislabelled.

Rotation convention: ``MediaInfo.rotation`` is the counter-clockwise angle of the display
matrix (FFmpeg's convention, normalised to 0/90/180/270). A phone video whose legacy ``rotate``
tag says 90 (clockwise) therefore reports 270.
"""

from stpr.io.common import (
    DEFAULT_FPS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Frame,
    MediaInfo,
    describe_os_error,
)
from stpr.io.encoding import resolve_video_codec
from stpr.io.reading import FrameReader, open_input, stream_counts
from stpr.io.segments import concat_segments, open_segment_writer, segment_container_suffix
from stpr.io.writing import FrameWriter, check_output_target, open_output

__all__ = [
    "Frame",
    "MediaInfo",
    "FrameReader",
    "FrameWriter",
    "open_input",
    "stream_counts",
    "open_output",
    "check_output_target",
    "resolve_video_codec",
    "open_segment_writer",
    "concat_segments",
    "segment_container_suffix",
    "describe_os_error",
    "DEFAULT_FPS",
    "VIDEO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
]
