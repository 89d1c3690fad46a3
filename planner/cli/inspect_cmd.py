"""`memfit inspect MODEL`: architecture, parameters and quant variants of a GGUF model.

The flags and the calls: resolve the reference (headers only), summarize it (planner/inspect.py),
print it (planner/report/inspect.py); with -v the network and cache activity goes to stderr.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from typing import Iterator

import click

from ..inspect import summarize
from ..report.inspect import render, verbose_footer
from ..report.layout import text_width, wrap
from ..resolver import resolve
from ..units import printable


@contextmanager
def _activity_log(verbose: bool) -> Iterator[None]:
    """With -v, memfit's log (requests, cache) on stderr while the block runs."""
    logger = logging.getLogger("memfit")
    handler: logging.Handler | None = None
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("memfit: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        if handler is not None:
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)


@click.command("inspect")
@click.argument("model")
@click.option("--revision", metavar="REV", help="Hub branch, tag or commit (default: main).")
@click.option("--quant", metavar="QUANT", help="Only this quant variant (e.g. Q4_K_M).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="Log network and cache activity to stderr.")
def inspect_command(model: str, revision: str | None, quant: str | None, as_json: bool, verbose: bool) -> None:
    """Show a model's architecture, parameters and quant variants from its GGUF headers.

    \b
    MODEL: a .gguf file or directory, owner/repo[:QUANT], hf.co/owner/repo:QUANT,
    a Hub URL, a short name (qwen3-vl-32b, gpt-oss-20b, ...), an Ollama model
    (ollama:qwen3:32b, gpt-oss:120b) or lmstudio:publisher/repo[:QUANT].
    Only header bytes are read (HTTP range requests); results are cached.
    """
    with _activity_log(verbose):
        summary = summarize(resolve(model, revision=revision, quant=quant, load_headers=True))
    click.echo(summary.model_dump_json(indent=2) if as_json else printable(render(summary)))
    if verbose:
        click.echo("\n".join(wrap(verbose_footer(), text_width(), "", "  ")), err=True)


COMMANDS = [inspect_command]
