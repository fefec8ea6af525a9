"""Operator commands: ``expire-uploads`` deletes abandoned partial uploads, ``media-migrate`` moves evidence
from local disk to an object store."""
from __future__ import annotations

import sys

import click
from flask import current_app

from server.uploads import migration
from server.uploads.expiry import expire_abandoned
from server.uploads.service import uploads
from server.uploads.storage import LocalMediaStore


@click.command("expire-uploads")
def expire_uploads_command() -> None:
    """Delete partial uploads not written to for INSPECT_ONCE_UPLOAD_EXPIRY_HOURS; print each one removed."""
    removed = expire_abandoned(click.echo)
    click.echo(f"{removed} partial upload(s) removed")


@click.command("media-migrate")
@click.option("--no-recheck", "recheck", flag_value=False, default=True,
              help="Do not read each copy back from the object store to hash it again (faster, less certain).")
def media_migrate_command(recheck: bool) -> None:
    """Copy the evidence under MEDIA_ROOT to the object store MEDIA_STORE_URL names, and record it there.

    Run it with the new configuration (MEDIA_STORE_URL and the AWS_* variables set) while MEDIA_ROOT still
    names the local disk. It can be stopped and run again: what was copied and checked stays recorded.
    """
    settings = current_app.config["SETTINGS"]
    if not settings.media_store_url:
        raise click.ClickException(
            "MEDIA_STORE_URL is not set: run media-migrate with the new configuration "
            "(MEDIA_STORE_URL=s3://BUCKET/PREFIX and the AWS_* variables), keeping MEDIA_ROOT pointed at the disk "
            "that holds the files.")
    if not settings.media_root.is_dir():
        raise click.ClickException(f"MEDIA_ROOT {settings.media_root} is not a directory: nothing to copy from.")
    source, target = LocalMediaStore(settings.media_root), uploads().store
    waiting = migration.partial_uploads_on(source)
    if waiting:
        click.echo(f"Warning: {waiting} partial upload(s) are still in progress on local disk and are not migrated; "
                   "let them finish (or expire) before switching the app servers to the object store.", err=True)
    total = migration.objects_to_migrate()
    try:
        with click.progressbar(length=total, label=f"Copying {total} object(s) to {settings.media_store_url}",
                               file=sys.stderr) as bar:
            report = migration.migrate_objects(source, target, say=lambda line: click.echo(line, err=True),
                                               advance=bar.update, recheck=recheck)
    except KeyboardInterrupt:
        click.echo("\nInterrupted: every object copied so far is checked and recorded; run media-migrate again "
                   "to copy the rest.", err=True)
        raise click.exceptions.Exit(130) from None
    click.echo(f"copied {report.copied} ({report.copied_bytes / (1 << 20):.1f} MiB), "
               f"already migrated {report.already_migrated}, failed {len(report.failed)}")
    if report.failed:
        raise click.ClickException(
            f"{len(report.failed)} object(s) were not copied (listed above) and still point at local disk; "
            "restore or investigate those files, then run media-migrate again.")
    click.echo(f"Every object is in the object store. The local files under {settings.media_root / 'objects'} were "
               "left in place; they can be removed once the app servers run with the new configuration.")
