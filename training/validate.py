"""Choose between trained students on a validation caption set that no benchmark uses.

    python -m training.validate NAME=FOLDER [NAME=FOLDER ...] [--count 300] [--seed 5000]

Each FOLDER is a student preset folder (`preset.json` with a `base`); prints one JSON line per student with the
judge's shares on `--count` captions drawn with `--seed`. `bench/compress.py` draws its captions from seeds 1000 and
2000 and the distillation's in-script judge from 10000, so a choice made here is not tuned to either.
"""

from __future__ import annotations

import argparse
import json

from models import Engine

from .evaluate import score_text_to_image

VALIDATION_SEED = 5000


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("students", nargs="+", help="NAME=FOLDER")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=VALIDATION_SEED)
    args = parser.parse_args(argv)
    engine = Engine()
    rows = []
    for spec in args.students:
        name, _, folder = spec.partition("=")
        preset = engine.register_folder(folder, name)
        rows.append({"name": name, "folder": folder, "seed": args.seed, "count": args.count,
                     "judged": score_text_to_image(engine, args.count, args.seed, preset=preset)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    main()
