"""Where the committed toy-world assets live inside the package.

`core/assets/demo` is the service's built-in `demo` model (the registry resolves `demo` to exactly
this folder); `core/assets/toyworld` holds the judge, the recommended erasure settings and the
build report.
"""

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
DEMO_MODEL_DIR = ASSETS_DIR / "demo"
TOYWORLD_DIR = ASSETS_DIR / "toyworld"
RECOMMENDED_FILE = TOYWORLD_DIR / "recommended.json"
BUILD_REPORT_FILE = TOYWORLD_DIR / "build_report.json"
