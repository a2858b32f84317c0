"""Loading carrier code tables from deploy/config/carrier-codes/<carrier>.toml.

The only I/O of normalisation: read each file with tomllib and hand the
document to `normalise.parse_code_table`, which validates it. A broken table
stops the service at start with an error naming the file, the entry and the
field, rather than mis-normalising scans at run time.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from handoff_tracking.ingress.normalise import CodeTable, CodeTableError, parse_code_table

CODE_TABLE_DIR = "carrier-codes"


def load_code_table(path: Path) -> CodeTable:
    source = str(path)
    try:
        with path.open("rb") as handle:
            doc = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise CodeTableError(source, "file", "toml", str(exc)) from None
    table = parse_code_table(doc, source)
    if table.carrier != path.stem:
        raise CodeTableError(
            source, "table", "carrier", f"{table.carrier!r} must match the file name {path.stem!r}"
        )
    return table


def load_code_tables(directory: Path) -> dict[str, CodeTable]:
    """Every `<carrier>.toml` in `directory`, keyed by carrier code."""
    if not directory.is_dir():
        raise CodeTableError(str(directory), "directory", "path", "code table directory not found")
    tables = {
        table.carrier: table for table in map(load_code_table, sorted(directory.glob("*.toml")))
    }
    if not tables:
        raise CodeTableError(str(directory), "directory", "path", "holds no <carrier>.toml table")
    return tables
