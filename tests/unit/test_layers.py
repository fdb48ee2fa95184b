"""The API process never loads Faust: it uses notify's library modules, not its agents."""

from __future__ import annotations

import subprocess
import sys


def test_api_and_notify_libraries_do_not_import_faust() -> None:
    code = (
        "import sys\n"
        "import api.server, api.routes_subscriptions, notify.senders, notify.matcher\n"
        "api.server.create_app()\n"
        "print('faust' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
