"""JSON text as every format writes it."""

from __future__ import annotations

import json

# json.dumps(value, ensure_ascii=False) without building an encoder per call; values parsed
# from JSON cannot be circular, so the check (a dict of ids per call) is skipped
dumps = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
