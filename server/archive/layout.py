"""Names inside a case file, shared by the packer and the offline checker (which needs neither Flask nor a database)."""
from __future__ import annotations

BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
SIGNATURE_FILE = "archive-signature.txt"
TAG_MANIFEST = "tagmanifest-sha256.txt"
MEDIA_TYPE = "application/zip"
