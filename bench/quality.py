"""Quality of the bundled models, measured by the shapes world's judge; prints JSON.

    python bench/quality.py [--count 300] [--preset bundled]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models import Engine  # noqa: E402
from models.shapes.evaluate import score_describe, score_regenerate, score_text_to_image  # noqa: E402

BARS = {"text_to_image": {"all": 0.90, "each": 0.95}, "describe": {"exact": 0.95}, "regenerate": {"all": 0.85}}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--preset", default="bundled")
    parser.add_argument("--seed", type=int, default=1000, help="captions and renders not seen in training")
    args = parser.parse_args(argv)
    engine = Engine(preset=args.preset)
    report = {"preset": args.preset, "count": args.count, "bars": BARS}
    for name, score in (("text_to_image", score_text_to_image), ("describe", score_describe),
                        ("regenerate", score_regenerate)):  # fmt: skip
        started = time.perf_counter()
        report[name] = score(engine, args.count, args.seed)
        report[name]["seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps({name: report[name]}), flush=True)
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
