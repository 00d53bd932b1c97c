"""The ``scopegen`` command (and ``python -m scopegen``).

``scopegen lint`` goes straight to its argparse command line, before typer,
rich or pydantic are imported: a lint then costs little more than the parse
(``benchmarks/bench_lint.py``). Every other command goes through the typer
app in ``scopegen.cli``.
"""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["lint"]:
        from scopegen.commands.lint import main as lint

        raise SystemExit(lint(argv[1:]))
    from scopegen.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
