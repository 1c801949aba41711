"""Time the training DataLoader's start: seconds from creating it to its first batch.

    python scripts/loader_startup.py WORKERS [KEY=VALUE ...]

The datasets are those of ``configs/v4.json`` (LOL from ../shared/data/lol-train, no validation
video, batch 4) with the given overrides, loaded by WORKERS worker processes exactly as
``stpr train`` starts them; it then draws 3 batches per worker. Example: ``2 lol_root=`` (video only).
"""

import sys
import time

from stpr.train import build_datasets, load_config, make_loader


def main() -> None:
    n = int(sys.argv[1])
    cfg = load_config("configs/v4.json", ["lol_root=../shared/data/lol-train", "val_video=", "batch=4",
                                          f"workers={n}", f"steps={3 * n}"] + sys.argv[2:])
    t = time.time()
    data, _ = build_datasets(cfg, 4)
    print(f"datasets built {time.time() - t:.1f}s", flush=True)
    t = time.time()
    for k, _batch in enumerate(make_loader(data, cfg)):
        if k == 0:
            print(f"first batch {time.time() - t:.1f}s", flush=True)
    print(f"{cfg.steps} batches {time.time() - t:.1f}s")


if __name__ == "__main__":
    main()
