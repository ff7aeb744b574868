"""Sphinx extension: generate the CLI reference from the argparse parser.

Adds a ``.. diluvian-cli::`` directive that renders ``diluvian -h`` and every
``diluvian COMMAND -h`` as literal blocks, so the documentation can never
drift from the parser.
"""

import argparse

from docutils import nodes
from sphinx.util.docutils import SphinxDirective


class DiluvianCli(SphinxDirective):
    has_content = False

    def run(self):
        from diluvian.__main__ import _make_main_parser

        parser = _make_main_parser()
        result = []
        main_section = nodes.section(ids=["cli-diluvian"])
        main_section += nodes.title(text="diluvian")
        main_section += nodes.literal_block(text=parser.format_help())
        result.append(main_section)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    section = nodes.section(ids=[f"cli-{name}"])
                    section += nodes.title(text=f"diluvian {name}")
                    section += nodes.paragraph(text=sub.description or "")
                    section += nodes.literal_block(text=sub.format_help())
                    result.append(section)
        return result


def setup(app):
    app.add_directive("diluvian-cli", DiluvianCli)
    return {"parallel_read_safe": True}
