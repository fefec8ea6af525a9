"""``python -m media``: see :mod:`media.cli`."""
from media.cli import main

raise SystemExit(main())
