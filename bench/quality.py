"""Quality of the bundled models, measured by the shapes world's judge; prints JSON lines, then the report.

    python -m bench.quality [--count 300] [--preset bundled] [--only text_to_image,describe]
"""

from __future__ import annotations

import argparse
import json
import time

from models import Engine
from training.evaluate import engine_scores

# share of cases (issue bars): `all` is every attribute right; style jobs: the style judged right, and shape,
# colour and background each kept (`all`, reported beside them, asks for all four in the same image)
BARS = {
    "text_to_image": {"all": 0.90, "each": 0.95},
    "describe": {"exact": 0.95},
    "regenerate": {"all": 0.85},
    "style_*": {"style": 0.85, "shape": 0.85, "color": 0.85, "background": 0.85},
    "instruct_edit": {"all": 0.80},
    "inpaint": {"all": 0.80, "psnr_outside": 30.0},
}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--preset", default="bundled")
    parser.add_argument("--seed", type=int, default=1000, help="captions and renders not seen in training")
    parser.add_argument("--only", default="", help="comma-separated job names (default: all)")
    args = parser.parse_args(argv)
    engine = Engine(preset=args.preset)
    report = {"preset": args.preset, "count": args.count, "bars": BARS}
    wanted = set(filter(None, args.only.split(",")))
    for name, score in engine_scores(engine, args.count, args.seed).items():
        if wanted and name not in wanted:
            continue
        started = time.perf_counter()
        report[name] = {**score(), "seconds": round(time.perf_counter() - started, 1)}
        print(json.dumps({name: report[name]}), flush=True)
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
