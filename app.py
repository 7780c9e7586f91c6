"""Depict: describe, generate and edit images.

    python app.py [--host 127.0.0.1] [--port 7860] [--share] [--preset bundled] [--auth USER:PASSWORD]

Environment variables mirror the flags (DEPICT_HOST, DEPICT_PORT, DEPICT_SHARE, DEPICT_PRESET, DEPICT_AUTH); on
Hugging Face Spaces (SPACE_ID set) the app listens on 0.0.0.0 and never opens a share tunnel.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import demo
from models import Engine
from models.presets import DEFAULT_PRESET
from models.settings import LIMITS, launch_defaults, on_spaces, outputs_dir


def parse_args(argv=None) -> argparse.Namespace:
    env = launch_defaults()
    parser = argparse.ArgumentParser(description="Depict: describe, generate and edit images.")
    parser.add_argument("--host", default=env["host"])
    parser.add_argument("--port", type=int, default=env["port"])
    parser.add_argument("--share", action="store_true", default=env["share"], help="open a temporary public link")
    parser.add_argument("--preset", default=env["preset"] or DEFAULT_PRESET,
                        help="a preset name or a local preset folder")  # fmt: skip
    parser.add_argument("--auth", action="append", default=[], metavar="USER:PASSWORD",
                        help="require this login for the page and the API; repeatable (env DEPICT_AUTH: pairs "
                             "separated by commas)")  # fmt: skip
    parser.add_argument("--auth-file", type=Path, help="a file of logins, one USER:PASSWORD a line")
    args = parser.parse_args(argv)
    if on_spaces():
        args.share = False
    pairs = args.auth or env["auth"]
    if args.auth_file:
        if not args.auth_file.is_file():
            parser.error(f"--auth-file {args.auth_file} does not exist.")
        pairs += args.auth_file.read_text().splitlines()
    args.auth = [login(pair, parser) for pair in pairs if pair.strip() and not pair.lstrip().startswith("#")]
    return args


def login(pair: str, parser: argparse.ArgumentParser) -> tuple[str, str]:
    """`USER:PASSWORD` -> (user, password); an argument error (not echoing the text) for anything else."""
    user, _, password = pair.strip().partition(":")
    if not user or not password:
        parser.error("each login must be USER:PASSWORD with neither part empty.")
    return user, password


def launch(args: argparse.Namespace, **kwargs):
    """Build the engine and the app and serve it; returns gradio's (app, local_url, share_url)."""
    engine = Engine(preset=args.preset)
    blocks = demo.build(engine)
    if args.share and not args.auth:
        print("The share link is open to anyone who has it: add --auth USER:PASSWORD to require a login.")
    kept = outputs_dir()
    app, local_url, share_url = blocks.launch(
        server_name=args.host, server_port=args.port, share=args.share, auth=args.auth or None,
        max_file_size=LIMITS.max_upload_bytes, allowed_paths=[str(kept.resolve())] if kept else None, css=demo.CSS,
        show_error=True, **kwargs,
    )  # fmt: skip
    if args.share and not share_url:
        print(f"Could not open a public share link (no connection to the tunnel); serving locally at {local_url}.")
    return blocks, local_url, share_url


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    launch(parse_args())
