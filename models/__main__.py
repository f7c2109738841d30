"""``python3 -m models <command>`` from the repository root (``python3 -m models --help`` lists them)."""

import importlib

import models  # this checkout's library under hubconf's private package (see models/__init__.py)

raise SystemExit(importlib.import_module(f"{models.__name__}.cli").main())
