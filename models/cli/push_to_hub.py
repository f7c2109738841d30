"""``python3 -m models push-to-hub DIR org/name``: upload a folder of save-pretrained to the Hugging Face Hub."""

from __future__ import annotations

import argparse

from .extras import require


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push-to-hub", help="upload a folder of save-pretrained to the Hugging Face Hub",
        description="Create the Hub repository org/name if need be and upload DIR (model.safetensors, config.json, "
                    "README.md) as one commit. Authenticates with HF_TOKEN or the stored login (hf auth login); "
                    "HF_ENDPOINT names another Hub. Needs huggingface_hub (requirements-hub.txt).")
    parser.add_argument("directory", metavar="DIR", help="a folder written by python3 -m models save-pretrained")
    parser.add_argument("repo_id", metavar="ORG/NAME", help="the Hub repository")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--message", default="Upload model (convnets-hub save-pretrained)", help="the commit message")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    require("push-to-hub", "huggingface_hub")
    from ..weights.hf_hub import push_model_folder

    url = push_model_folder(args.directory, args.repo_id, private=args.private, commit_message=args.message)
    print(f"pushed {args.directory} to {args.repo_id}: {url}")
    return 0
