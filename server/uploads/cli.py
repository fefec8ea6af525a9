"""``flask --app server expire-uploads``: delete abandoned partial uploads."""
from __future__ import annotations

import click

from server.uploads.expiry import expire_abandoned


@click.command("expire-uploads")
def expire_uploads_command() -> None:
    """Delete partial uploads not written to for INSPECT_ONCE_UPLOAD_EXPIRY_HOURS; print each one removed."""
    removed = expire_abandoned(click.echo)
    click.echo(f"{removed} partial upload(s) removed")
