"""Depict: describe, generate and edit images.

    python app.py [--host 127.0.0.1] [--port 7860] [--share] [--preset bundled] [--auth-file logins.txt] [--mcp]
                  [--backend http://HOST:8000]

Environment variables mirror the flags (DEPICT_HOST, DEPICT_PORT, DEPICT_SHARE, DEPICT_PRESET, DEPICT_AUTH); on
Hugging Face Spaces (SPACE_ID set) the app listens on 0.0.0.0 and never opens a share tunnel. Logins asked for but
naming none (a file of comments, a blank DEPICT_AUTH) stop the start: the app never opens without the lock it was
given.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import demo
from demo import mcp_logins
from demo.results import private_dir
from models import Engine
from models.presets import DEFAULT_PRESET
from models.remote import RemoteEngine
from models.settings import LIMITS, launch_defaults, on_spaces


def parse_args(argv=None) -> argparse.Namespace:
    env = launch_defaults()
    parser = argparse.ArgumentParser(description="Depict: describe, generate and edit images.")
    parser.add_argument("--host", default=env["host"])
    parser.add_argument("--port", type=int, default=env["port"])
    parser.add_argument("--share", action="store_true", default=env["share"], help="open a temporary public link")
    parser.add_argument("--preset", default=env["preset"] or DEFAULT_PRESET,
                        help="a preset name or a local preset folder")  # fmt: skip
    parser.add_argument("--auth", action="append", default=[], metavar="USER:PASSWORD",
                        help="require this login for the page, the API and MCP; repeatable (env DEPICT_AUTH: pairs "
                             "separated by commas)")  # fmt: skip
    parser.add_argument("--auth-file", type=Path, help="a file of logins, one USER:PASSWORD a line")
    parser.add_argument("--mcp", action="store_true", default=env["mcp"],
                        help="also serve every job as an MCP tool (streamable HTTP at /gradio_api/mcp/)")  # fmt: skip
    parser.add_argument("--backend", default=env["backend"], metavar="URL",
                        help="run the jobs on a `python -m models serve` deployment at URL")  # fmt: skip
    args = parser.parse_args(argv)
    if on_spaces():
        args.share = False
    args.auth = logins(args, env["auth"], parser)
    return args


def logins(args: argparse.Namespace, env_auth: str | None, parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """The logins asked for: each `--auth`, else `DEPICT_AUTH`'s (separated by commas), plus the `--auth-file`'s lines
    (blank lines and `#` comments skipped). A source given but naming no login is an argument error, never an open
    app."""
    found = [login(pair, parser) for pair in args.auth]
    if not args.auth and env_auth:
        found += [login(pair, parser) for pair in env_auth.split(",") if pair.strip()]
        if not found:
            parser.error("DEPICT_AUTH is set but names no login: give USER:PASSWORD pairs separated by commas, or "
                         "unset it to run without logins.")  # fmt: skip
    if args.auth_file:
        if not args.auth_file.is_file():
            parser.error(f"--auth-file {args.auth_file} does not exist (or is not a file).")
        try:
            lines = [line for line in args.auth_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as error:
            parser.error(f"--auth-file {args.auth_file} cannot be read as UTF-8 text ({type(error).__name__}).")
        pairs = [line for line in lines if not line.lstrip().startswith("#")]
        if not pairs:
            parser.error(f"--auth-file {args.auth_file} names no login (only blank lines or # comments): add one "
                         "USER:PASSWORD a line.")  # fmt: skip
        found += [login(pair, parser) for pair in pairs]
    return found


def login(pair: str, parser: argparse.ArgumentParser) -> tuple[str, str]:
    """`USER:PASSWORD` -> (user, password); an argument error (not echoing the text) for anything else."""
    user, _, password = pair.strip().partition(":")
    if not user or not password:
        parser.error("each login must be USER:PASSWORD with neither part empty.")
    return user, password


def launch(args: argparse.Namespace, prevent_thread_lock: bool = False, **kwargs):
    """Build the engine and the app and serve it (until interrupted, unless `prevent_thread_lock`); returns gradio's
    (app, local_url, share_url). With logins, MCP takes them as HTTP Basic credentials (`demo/mcp_logins.py`)."""
    os.environ.setdefault("GRADIO_TEMP_DIR", str(private_dir("gradio")))  # Gradio's copies private, like ours
    engine = RemoteEngine(args.backend, preset=args.preset) if args.backend else Engine(preset=args.preset)
    blocks = demo.build(engine)
    if args.share and not args.auth:
        print("The share link is open to anyone who has it: add --auth-file FILE to require a login.")
    mcp_locked = args.mcp and bool(args.auth)
    middleware = [mcp_logins.middleware(args.auth)] if mcp_locked else []
    # no allowed_paths: the outputs folder is never served as it is, only the copies of the images Depict lists
    _, local_url, share_url = blocks.launch(
        server_name=args.host, server_port=args.port, share=args.share, auth=args.auth or None,
        max_file_size=LIMITS.max_upload_bytes, css=demo.CSS, show_error=True, mcp_server=args.mcp,
        app_kwargs={"middleware": middleware}, prevent_thread_lock=True, **kwargs,
    )  # fmt: skip
    if mcp_locked:
        mcp_logins.connect(blocks)
    if args.share and not share_url:
        print(f"Could not open a public share link (no connection to the tunnel); serving locally at {local_url}.")
    if not prevent_thread_lock:
        blocks.block_thread()
    return blocks, local_url, share_url


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    launch(parse_args())
