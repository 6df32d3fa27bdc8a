"""Reading DeepSpeed hostfiles (`hostname slots=N` per line), stricter than DeepSpeed itself.

DeepSpeed's launcher accepts any line that starts with `NAME slots=DIGITS` and ignores what follows, and it
takes `slots=0`; a typo there shows up only as a job on the wrong hosts. Here every line must be blank, a
comment, or exactly `HOST slots=N [# comment]` with N >= 1 and each host once, and a bad line is an error
naming the file and line. Host names are restricted to what ssh, pdsh and mpiexec all take as a plain
name, so a name can never be read as an option (a leading '-') or a list (a ',').
"""

from __future__ import annotations

import re
from pathlib import Path

from xlmr_ds.errors import XLMRDSError

_HOST = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_ENTRY = re.compile(r"^(?P<host>\S+)\s+slots=(?P<slots>\S*)\s*(?:#.*)?$")
EXPECTED = "expected 'HOSTNAME slots=N' (N >= 1), a '#' comment or a blank line"


def parse_hostfile(text: str, source: str) -> list[tuple[str, int]]:
    """[(host, slots)] in file order; `source` names the file in errors."""
    hosts: dict[str, tuple[int, int]] = {}  # host -> (slots, line number)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{number}"
        match = _ENTRY.match(line)
        if not match:
            raise XLMRDSError(f"{where}: {line!r}: {EXPECTED}")
        host, slots = match["host"], match["slots"]
        if not re.fullmatch(_HOST, host):
            raise XLMRDSError(f"{where}: host {host!r} is not a plain host name or address "
                              f"(letters, digits, '.', '-', '_'; not starting with '-')")
        if not re.fullmatch(r"[+-]?\d+", slots):
            raise XLMRDSError(f"{where}: slots={slots!r} is not a whole number; {EXPECTED}")
        if int(slots) < 1:
            raise XLMRDSError(f"{where}: slots={slots} for {host}: a host needs at least 1 slot "
                              f"(leave it out, or use --exclude {host} at launch)")
        if host in hosts:
            raise XLMRDSError(f"{where}: host {host} is listed twice (first on line {hosts[host][1]}); "
                              f"give each host one line with its total slots")
        hosts[host] = (int(slots), number)
    if not hosts:
        raise XLMRDSError(f"{source}: names no host; {EXPECTED}")
    return [(host, slots) for host, (slots, _) in hosts.items()]


def read_hostfile(path: str | Path) -> list[tuple[str, int]]:
    """[(host, slots)] from a hostfile, in file order (DeepSpeed gives ranks in this order)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise XLMRDSError(f"{path}: hostfile not found") from None
    except IsADirectoryError:
        raise XLMRDSError(f"{path}: is a directory, not a hostfile") from None
    except UnicodeDecodeError as error:
        raise XLMRDSError(f"{path}: not UTF-8 text (byte {error.start}); a hostfile is plain text") from None
    if text.startswith("\ufeff"):
        raise XLMRDSError(f"{path}: starts with a byte-order mark, which DeepSpeed's launcher reads as part of the "
                          f"first host's name; save the file without it")
    return parse_hostfile(text, str(path))
