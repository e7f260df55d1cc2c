"""Makes this checkout's packages importable by their own names anywhere in the venv.

The editable install (``pip install -e .``) maps only the distribution's one
top-level package, ``cqrs_users_server`` (setup.py); development and the tests
import ``gateway``, ``store_svc``, ``cqrs`` ... directly, from any working
directory (the tests start services as ``python -m store_svc`` in temporary
folders). A ``.pth`` file naming the checkout and its ``gen/`` does that, the
way ``pip install -e`` did before the packages moved under one name.
Run by ``make install``; prints the file it wrote.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
PTH = Path(sysconfig.get_paths()["purelib"]) / "cqrs_users_checkout.pth"

if __name__ == "__main__":
    PTH.write_text(f"{CHECKOUT}\n{CHECKOUT / 'gen'}\n")
    print(f"{PTH}: {CHECKOUT} and {CHECKOUT / 'gen'}")
