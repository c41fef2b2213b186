"""The schema env: schemathesis against a live steward (tox -e schema)."""

import os
import sys

sys.path.insert(0, os.path.abspath(
    os.path.join(os.path.dirname(__file__), '..')))
