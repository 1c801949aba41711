#!/usr/bin/env bash
# Fetch REAL dark videos (recorded in low light, not synthetically darkened) for unpaired evaluation
# (flicker, exposure pumping, saturation, NIQE). Two disjoint sets; nothing here is committed.
#
# The held-out set (default; into data_cache/real-dark-videos/): reported once per shipped model,
# never used to train, select checkpoints or tune settings.
#   dashcam_night_road.mp4  night driving, dash camera        tmo324/lane_detecting
#   cctv_night_yard.mp4     night yard, fixed security view   ken2190/simple-tracking
#   rccar_night_torch.mp4   handheld/onboard, torch-lit, very noisy  Aeromaster213/RC-Escapade-Synchronisers
#   phone_night_street.mp4  phone, street from a balcony      nahianfariha/REAL-TIME-SOCIAL-DISTANCE-...
#   aerial_dusk_bridge.mp4  drone at dusk, lit bridge         Abhinandpv10/AI-Based-Low-Light-...
#   ir_cctv_night.mp4       IR night-mode CCTV (greyscale)    tyoh-love/Ondevice-AI
# The validation set (--val; into data_cache/real-dark-val/): for choosing settings and checkpoints
# on long real footage (never for training), so the held-out set stays unspent.
#   phone_night_crowd.mp4   phone, crowd with glow sticks at night, very dark   keya714/ZeroDCE_LowLightEnhancement
#   night_street_crossing.mp4  night street, pedestrians and cars, neon       DeepT7/car_detection_in_low-light
#   phone_night_skyline.mp4 phone pan over a hazy night skyline, 1080p       GuoQiDYTC/COMP3065-Computer-vision-Coursework
# Each source is a public git repository; each clip is pinned by its git blob id, so a changed
# upstream file stops the script instead of silently changing the set. Each clip is cut to at most
# 150 frames (start frame below) and re-encoded losslessly (H.264 qp 0, the decoded 4:2:0 frames
# unchanged), so no second round of compression artefacts; WHOLE=1 copies the original files
# instead. MANIFEST.txt lists file, frames, resolution, fps, mean luma (BT.601, 0-255), bytes,
# source repository, path and blob, the segment, and the licence/terms as the source states them.
# Give another clone URL or a local copy (work tree or bare git dir) of a source as ID=SOURCE:
#   bash scripts/fetch_dark_videos.sh [--val] [DEST] [lane=SRC] [tracking=SRC] [rccar=SRC] [social=SRC] \
#        [zerodce=SRC] [ircctv=SRC] [crowd=SRC] [street=SRC] [skyline=SRC]
# Needs git and a Python with PyAV and NumPy (PYTHON=..., default .venv/bin/python, else python3).
set -euo pipefail
role=heldout
dest=""
declare -A home=(
  [lane]=https://github.com/tmo324/lane_detecting
  [tracking]=https://github.com/ken2190/simple-tracking
  [rccar]=https://github.com/Aeromaster213/RC-Escapade-Synchronisers
  [social]=https://github.com/nahianfariha/REAL-TIME-SOCIAL-DISTANCE-ESTIMATION-USING-YOLO-CONVOLUTIONAL-NEURAL-NETWORK-AND-EUCLIDEAN-DISTANCE
  [zerodce]=https://github.com/Abhinandpv10/AI-Based-Low-Light-Video-Enhancement-and-Anomaly-Detection
  [ircctv]=https://github.com/tyoh-love/Ondevice-AI
  [crowd]=https://github.com/keya714/ZeroDCE_LowLightEnhancement
  [street]=https://github.com/DeepT7/car_detection_in_low-light
  [skyline]=https://github.com/GuoQiDYTC/COMP3065-Computer-vision-Coursework
)
declare -A src=()
for id in "${!home[@]}"; do src[$id]="${home[$id]}"; done
for a in "$@"; do
  case "$a" in
    --val) role=val ;;
    -*) echo "error: unknown option '$a'" >&2; exit 1 ;;
    *=*) id="${a%%=*}"; [ -n "${src[$id]+x}" ] || { echo "error: unknown source id '$id' (one of: ${!src[*]})" >&2; exit 1; }
         src[$id]="${a#*=}" ;;
    *) dest="$a" ;;
  esac
done
# id | path in the repository | pinned git blob | output file | first frame | frames | licence/terms as stated | notes
heldout_clips=(
  "lane|videos/night.mp4|c769df3d031f64750e58559403e47622ee51b01e|dashcam_night_road.mp4|0|150|repo MIT (LICENSE.txt, (c) 2019 Tergel Molom-Ochir); README thanks the YouTube channel '4k Relaxation Channel' for the videos, no separate video licence|night highway from a dash camera; headlights, heavy blocking in the blacks"
  "tracking|videos/night.mp4|e79d4ca834e2b593cb57ba6176889a03ff5c128a|cctv_night_yard.mp4|0|150|repo Apache-2.0 (LICENSE); the video's origin is not stated|static night view of two lit garages, a person walks across; 1080p"
  "rccar|Media/night_test.mp4|4c8cf1093eb7e7c5994d7b0ea4b41c4f4d0d9ad2|rccar_night_torch.mp4|330|150|repo GPL-3.0 (LICENSE); the team's own night test of their RC car (README)|torch-lit car on a dark track; strong sensor noise; real brightness swings (torch), near-black frames"
  "social|night.mp4|3e99b912b1cbb3cdbf0f02e72f3bec08f14b57ba|phone_night_street.mp4|0|83|no licence stated in the repository|phone video (portrait) of a street at night from above; whole clip (83 frames)"
  "zerodce|ZeroDCE/test.mp4|0f48ff7751adaa0302f1e9faec85e333c07e29b7|aerial_dusk_bridge.mp4|0|150|no licence stated in the repository; the video's origin is not stated (an enhancement demo input)|drone over a lit cable-stayed bridge at dusk; cleaner than the others"
  "ircctv|night.mp4|f083b4fc1ea54c4eb5e10b3ab10402155ea4e965|ir_cctv_night.mp4|0|150|no licence stated in the repository; the repository ships a YouTube downloader, so the clip is probably from YouTube|infrared night-mode security camera: greyscale (no colour to judge), timestamp overlay"
)
val_clips=(
  "crowd|sample3.mp4|e1a4644ea4658a195b1076817e60c0e0efb8ac69|phone_night_crowd.mp4|0|150|no licence stated in the repository; the video's origin is not stated (a Zero-DCE demo input)|handheld phone, portrait: a crowd with glow sticks before a floodlit arch; very dark (luma ~5), noisy, phone H.264"
  "street|images/night_street.mp4|d26019bef3fc9d2b259467b8a93f7a3b778b5f69|night_street_crossing.mp4|0|150|no licence stated in the repository; the video's origin is not stated|night street crossing: pedestrians, cars with headlights, neon signs; 640x360, fairly clean"
  "skyline|dark.mp4|09b9e08225c85615ffcca98f9f76efc2fcba8462|phone_night_skyline.mp4|0|150|no licence stated in the repository (coursework); the video's origin is not stated|phone pan over a hazy night skyline with a lit bridge and tower; 1080p, murky shadows"
)
if [ "$role" = val ]; then clips=("${val_clips[@]}"); else clips=("${heldout_clips[@]}"); fi
[ -n "$dest" ] || { [ "$role" = val ] && dest="data_cache/real-dark-val" || dest="data_cache/real-dark-videos"; }
if [ -f "$dest/MANIFEST.txt" ]; then
  missing=0
  for c in "${clips[@]}"; do IFS='|' read -r _ _ _ out _ <<<"$c"; [ -f "$dest/$out" ] || missing=1; done
  if [ "$missing" -eq 0 ]; then echo "$dest already holds the ${#clips[@]} real dark clips (see $dest/MANIFEST.txt)"; exit 0; fi
fi
py="${PYTHON:-}"
[ -n "$py" ] || { [ -x .venv/bin/python ] && py=.venv/bin/python || py=python3; }
"$py" -c 'import av, numpy' 2>/dev/null || { echo "error: $py lacks PyAV/NumPy (set PYTHON=...)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/raw" "$tmp/out"
declare -A repo=()
for c in "${clips[@]}"; do
  IFS='|' read -r id path blob out _ <<<"$c"
  s="${src[$id]}"
  if [ -z "${repo[$id]+x}" ]; then
    if [ -d "$s" ]; then   # local copy: read its objects in place (a bare mirror, or a work tree)
      s="$(cd "$s" && pwd)"
      GIT_CEILING_DIRECTORIES="$(dirname "$s")" git -C "$s" rev-parse --git-dir >/dev/null 2>&1 \
        || { echo "error: $id: $s is not a git repository" >&2; exit 1; }
      repo[$id]="$s"
    else
      git clone --quiet --depth 1 --no-checkout "$s" "$tmp/src-$id" >/dev/null 2>&1 \
        || { echo "error: $id: cannot clone $s" >&2; exit 1; }
      repo[$id]="$tmp/src-$id"
    fi
  fi
  r="${repo[$id]}"
  GIT_CEILING_DIRECTORIES="$(dirname "$r")" git -C "$r" cat-file -e "$blob^{blob}" 2>/dev/null \
    || { echo "error: $id: ${src[$id]} lacks $path at the pinned version (blob $blob)" >&2; exit 1; }
  GIT_CEILING_DIRECTORIES="$(dirname "$r")" git -C "$r" cat-file blob "$blob" >"$tmp/raw/$out"
  if head -c 64 "$tmp/raw/$out" | grep -q '^version https://git-lfs'; then
    echo "error: $id: $path in ${src[$id]} is a Git LFS pointer, not the video" >&2; exit 1
  fi
done
# Cut (or copy), check and describe each clip; one MANIFEST line per clip.
manifest_rows=()
for c in "${clips[@]}"; do
  IFS='|' read -r id path blob out start n licence notes <<<"$c"
  manifest_rows+=("$out|$start|$n|${home[$id]}|${src[$id]}|$path|$blob|$licence|$notes")
done
ROLE="$role" WHOLE="${WHOLE:-0}" "$py" - "$tmp/raw" "$tmp/out" "${manifest_rows[@]}" <<'PY'
import os
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

raw, out = Path(sys.argv[1]), Path(sys.argv[2])
whole = os.environ.get("WHOLE", "0") == "1"
role = os.environ.get("ROLE", "heldout")


def luma(frame):
    rgb = frame.to_ndarray(format="rgb24").astype(np.float32)
    return float((rgb @ np.array([0.299, 0.587, 0.114], np.float32)).mean())


def cut(src, dst, start, n):
    with av.open(str(src)) as ic:
        ist = ic.streams.video[0]
        rate = ist.average_rate or ist.guessed_rate or Fraction(25)
        rate = Fraction(rate).limit_denominator(1001)
        with av.open(str(dst), "w") as oc:
            ost = oc.add_stream("libx264", rate=rate)
            ost.width, ost.height = ist.codec_context.width, ist.codec_context.height
            ost.pix_fmt = "yuv420p"
            ost.options = {"qp": "0", "preset": "veryfast", "threads": "1"}
            k = 0
            for i, f in enumerate(ic.decode(ist)):
                if i < start:
                    continue
                if k == n:
                    break
                if f.format.name != "yuv420p":
                    f = f.reformat(format="yuv420p")
                f = av.VideoFrame.from_ndarray(f.to_ndarray(), format="yuv420p")
                f.pts, f.time_base = k, 1 / rate
                oc.mux(ost.encode(f))
                k += 1
            oc.mux(ost.encode(None))
    if k < n:
        sys.exit(f"fetch_dark_videos.sh: {src.name} has only {start + k} frames, need {start + n}")


rows = []
for spec in sys.argv[3:]:
    name, start, n, repo, got, path, blob, licence, notes = spec.split("|")
    start, n = int(start), int(n)
    dst = out / name
    if whole:
        dst.write_bytes((raw / name).read_bytes())
        seg = "whole file"
    else:
        cut(raw / name, dst, start, n)
        seg = f"frames {start}-{start + n - 1} of the original, lossless H.264"
    with av.open(str(dst)) as c:
        st = c.streams.video[0]
        means = [luma(f) for f in c.decode(st)]
        w, h = st.codec_context.width, st.codec_context.height
        fps = float(st.average_rate or 0)
    if len(means) < 50:
        sys.exit(f"fetch_dark_videos.sh: {name} decodes to {len(means)} frames (< 50)")
    rows.append([name, str(len(means)), f"{w}x{h}", f"{fps:.2f}", f"{np.mean(means):.1f}",
                 f"{min(means):.1f}-{max(means):.1f}", str(dst.stat().st_size), repo, path, blob,
                 seg, licence, notes, got])
    print(f"{name}: {len(means)} frames {w}x{h} mean luma {np.mean(means):.1f}")
head = ["file", "frames", "resolution", "fps", "mean_luma", "luma_range", "bytes", "source", "path",
        "blob", "segment", "licence_terms", "notes", "fetched_from"]
with open(out / "MANIFEST.txt", "w") as fh:
    if role == "val":
        fh.write("# Real low-light videos (not synthetically darkened). VALIDATION: for choosing settings and\n"
                 "# checkpoints on long real footage; never train on them. Written by scripts/fetch_dark_videos.sh --val;\n"
                 "# tab-separated.\n")
    else:
        fh.write("# Real low-light videos (not synthetically darkened). EVALUATION ONLY: never train, select\n"
                 "# checkpoints or tune on them. Written by scripts/fetch_dark_videos.sh; tab-separated.\n")
    fh.write("# mean_luma / luma_range: BT.601 luma of the RGB frames, 0-255 (clip mean; per-frame min-max).\n")
    fh.write("\t".join(head) + "\n")
    for r in rows:
        fh.write("\t".join(r) + "\n")
PY
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.partial" && mv "$tmp/out" "$dest.partial" && rm -rf "$dest" && mv "$dest.partial" "$dest"
if [ "$role" = val ]; then use="validation: never train on them"; else use="evaluation only"; fi
echo "${#clips[@]} real dark clips in $dest ($use; see $dest/MANIFEST.txt)"
