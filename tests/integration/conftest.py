# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import sys

# testbed.py sits next to the tests; importlib import mode does not put this folder on sys.path.
sys.path.insert(0, os.path.dirname(__file__))
