"""``python3 -m models <command>`` from the repository root (``python3 -m models --help`` lists them)."""

from .cli import main

raise SystemExit(main())
