"""Write the API reference of lstmgen's public names (pdoc, HTML) into a folder: `make docs` runs this.

Only the stable surface is documented: the package's names (lstmgen.build, verify, run, inspect, export,
BuildResult, CellConfig, load_weights, errors); other modules are internal and may move.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(out: Path) -> None:
    import pdoc  # in .venv-docs only: no dependency of lstmgen

    import lstmgen

    pdoc.render.configure(docformat="google", footer_text=f"lstmgen {lstmgen.__version__}", show_source=False)
    # The package itself is not passed: pdoc would take the submodules named like its functions
    # (lstmgen.build, lstmgen.run, internal) for the public names.
    pdoc.pdoc("lstmgen.api", "lstmgen.errors", output_directory=out)
    print(f"wrote {len(list(out.rglob('*.html')))} pages into {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/docs"))
