#!/usr/bin/env python
"""The spec's extraction command, backed by herostore (same flags as ``herostore extract``).

    python scripts/extract_features.py --video_path /path/to/raw_video.mp4 --output_dir dataset_root/features
    python scripts/extract_features.py --video_path videos/ --output_dir dataset_root/features --format npy

See docs/extraction.md for the flags, model defaults and offline use.
"""

import sys
from pathlib import Path

try:
    from herostore.cli.extract import main
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from herostore.cli.extract import main

if __name__ == "__main__":
    sys.exit(main(prog="extract_features.py"))
