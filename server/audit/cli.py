"""``flask --app server audit-verify``: check the audit log's hash chain."""
from __future__ import annotations

import sys

import click

from server.audit.service import verify_chain


@click.command("audit-verify")
@click.option("--page-size", default=1000, show_default=True, type=click.IntRange(1, 100_000),
              help="Entries read per query (memory stays flat whatever the log's length).")
def audit_verify_command(page_size: int) -> None:
    """Verify the audit log; exit 0 when intact, 1 with the first broken entry otherwise."""
    result = verify_chain(page_size)
    if result.ok:
        click.echo(f"audit log intact: {result.checked} entries checked")
        return
    where = f"entry {result.first_broken_seq}" if result.first_broken_seq is not None else "the chain head"
    click.echo(f"audit log BROKEN at {where}: {result.reason} ({result.checked} entries verified before it)")
    sys.exit(1)
