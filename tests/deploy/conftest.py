"""tests/deploy: make the shared helpers (deploy_support.py) importable.

The root pytest config uses --import-mode=importlib, which does not put test folders on
sys.path; a uniquely named helper module avoids clashing with other conftest modules.
"""

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
