#!/usr/bin/env bash
# Fetch the whole LOL-v1 data set (Wei et al., BMVC 2018; research use only) into data_cache/lol-v1/:
#   train/{low,high}/N.png    the 485 "our485" training pairs
#   eval15/{low,high}/N.png   the official 15-pair test split: for reporting only, once per shipped
#                             model; never train, select checkpoints or tune settings on it
# Source: a public git repository that carries both splits under dataset/{train,test}/{low,normal}.
# Give another clone URL or a local copy of it as the first argument. Nothing here is committed.
#   bash scripts/fetch_lol.sh [SOURCE] [DEST]
set -euo pipefail
src="${1:-https://github.com/meh2005/Low-Light-Image-Enhancement-using-RetinexNet}"
dest="${2:-data_cache/lol-v1}"
if [ -d "$dest/train/low" ] && [ -d "$dest/eval15/low" ]; then
  echo "$dest already holds LOL-v1 ($(ls "$dest/train/low" | wc -l) training pairs)"; exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
git clone --quiet --depth 1 "$src" "$tmp/repo"
for split in train:train test:eval15; do
  from="$tmp/repo/dataset/${split%%:*}"; to="$tmp/out/${split##*:}"
  [ -d "$from/low" ] && [ -d "$from/normal" ] || { echo "error: $src has no dataset/${split%%:*}/{low,normal}" >&2; exit 1; }
  mkdir -p "$to"
  cp -r "$from/low" "$to/low"
  cp -r "$from/normal" "$to/high"
done
find "$tmp/out" -name '.*' -type f -delete   # macOS .DS_Store files ride along in the source
n_train=$(ls "$tmp/out/train/low" | wc -l); n_test=$(ls "$tmp/out/eval15/low" | wc -l)
# The test split must not leak into training: no file name in both.
overlap=$(comm -12 <(ls "$tmp/out/train/low" | sort) <(ls "$tmp/out/eval15/low" | sort) | wc -l)
[ "$overlap" -eq 0 ] || { echo "error: $overlap test images also in the training split" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
# An incomplete earlier copy is replaced whole (mv into an existing folder would nest inside it).
rm -rf "$dest.partial" && mv "$tmp/out" "$dest.partial" && rm -rf "$dest" && mv "$dest.partial" "$dest"
echo "LOL-v1 in $dest: $n_train training pairs, $n_test test pairs (eval15)"
