"""Help text that fits the terminal without losing words.

click cuts each command's summary in a group's "Commands:" list to what fits one line and ends it
with "...", so an 80-column terminal shows less than a wide one. Here the summary is the whole
first sentence, wrapped under its command by click's own definition-list writer instead. The
width itself comes from planner.cli.run (terminal_width = layout.text_width()).
"""

from __future__ import annotations

import click

SUMMARY_LIMIT = 1000  # "no limit": the first sentence of the docstring, however long


class WrappingGroup(click.Group):
    """A click group whose command list wraps each summary instead of truncating it."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is None or cmd.hidden:
                continue
            rows.append((name, cmd.get_short_help_str(SUMMARY_LIMIT)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
