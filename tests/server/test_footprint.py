"""The web server's processes stay small: the media analysis libraries load only in workers.

Each gunicorn worker holds what ``create_app`` imports; OpenCV, PyAV and NumPy alone add about
40 MB to every one of them, and the upload path's memory target (issue 4) counts them.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from server import create_app
create_app()
print(",".join(sorted(m for m in ("cv2", "av", "numpy", "weasyprint") if m in sys.modules)))
"""


def test_the_app_does_not_load_the_media_analysis_libraries(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSPECT_ONCE_")}
    env.update(PYTHONPATH=str(REPO), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}",
               INSPECT_ONCE_VAR=str(tmp_path), MEDIA_ROOT=str(tmp_path / "media"), INSPECT_ONCE_DEBUG="1")
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"loaded at app start: {done.stdout.strip()}"
