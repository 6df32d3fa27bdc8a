"""The manual's command lines as tests/docs/test_commands.py reads, parses and runs them.

Reading (the manual's command convention). The pages are README.md and docs/**/*.md. In every ```bash (or sh,
shell) fenced block, physical lines ending in an unescaped `\\` are joined as bash joins them; comments (`#`
starting a word) are dropped; heredoc bodies are skipped; a line is cut into simple commands at `|`, `&&`, `||`,
`;`, `&` and parentheses, and redirections (`> FILE`, `2>&1`) are dropped. A simple command is a manual command
when, after leading `VAR=value` assignments and shell keywords (`do`, `then`, `time` ...), it starts with
`xlmr-ds`, `deepspeed`, `mpiexec`/`mpirun` (running xlmr-ds or `python -m xlmr_ds...`) or `python -m xlmr_ds...`
(any path to xlmr-ds or python counts: `.venv/bin/xlmr-ds`). `$NAME` is replaced by its value where a line of
the same page assigned it (`NAME=value` or `export NAME=value` on a line of its own); other variables stay as
they are written, as placeholders do. A command holding `...`, an `[--optional]` word, a `<placeholder>` or a
command substitution is refused as written: it cannot be checked, and pasted into a shell it fails.

Parsing, without running anything. `xlmr-ds ARGS`, `python -m xlmr_ds ARGS` and `deepspeed ... --module xlmr_ds
ARGS` go to xlmr_ds.cli.main.build_parser(); `xlmr_ds.train` and `xlmr_ds.finetune` (python -m or deepspeed
--module) to the parser their main() builds (a OneLineErrorParser given the module's add_arguments, in
xlmr_ds/cli/train.py and xlmr_ds/cli/finetune.py). The launcher part is checked as well: deepspeed's own flags by
DeepSpeed's launcher parser (deepspeed.launcher.runner.parse_args), which must see --module and an xlmr_ds entry
point; mpiexec/mpirun options against MPI_OPTIONS below (Open MPI and MPICH/Hydra spellings). Accepted means
argparse takes every flag name, every value's syntax and choice, and finds the required flags, with one rule
stricter than the command line itself: flags are spelt in full (abbreviations are off), because an abbreviation
argparse takes today becomes ambiguous the day a flag with the same beginning is added. `python -m` of another
xlmr_ds module is accepted when the module exists and has a `__main__` block (its flags are not checked).

Placeholder paths. The argparse types in xlmr_ds/cli/arguments.py are pure functions of the string (int,
float, positive_int, ...) except the output-path checks (OUTPUT_TYPES: output_directory, output_file,
spm_prefix, which call xlmr_ds/outputs.py). Those look at the disk: whether the path is a file, whether its
nearest existing parent is writable. On a placeholder their answer depends on the machine (`--out /shared/data`
fails where / is not writable, `--out runs/base` where runs/base is a file); parsing in an empty temporary
directory would cover relative paths only. So the checker parses with its own copies of the parsers, in which
the OUTPUT_TYPES take the value as a plain string; all else is the real parser.
`test_the_parsers_type_functions_read_no_files` fails when a parser gains a type that is in neither PURE_TYPES
nor OUTPUT_TYPES, or an action class of its own, so a new check of the disk cannot slip in unnoticed.

Running. The blocks directly preceded by `<!-- command-test: run -->` (blank lines between are allowed) run as
one `bash -e` script per page, in order, in a fresh directory holding links to the repository's LINKED_FOLDERS,
with the interpreter's bin directory (the venv's: xlmr-ds, deepspeed, python) first on PATH and
DS_ACCELERATOR=cpu. A failure names the page's line whose command failed (an ERR trap reports the script line).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import io
import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from xlmr_ds.cli import arguments, finetune, train
from xlmr_ds.cli.arguments import OneLineErrorParser, non_negative_int, positive_float, positive_int
from xlmr_ds.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
RUN_MARKER = "<!-- command-test: run -->"
SHELL_FENCES = frozenset({"bash", "sh", "shell"})
LINKED_FOLDERS = ("ds_configs", "model_configs", "recipes", "hostfiles", "benchmarks")
RUN_TIMEOUT_S = 600
"""A page's run blocks take well under a minute on 2 cores; this only stops a hung job (on a loaded machine
they take several times longer)."""

# ---- the pages ---------------------------------------------------------------------------------------------


def manual_pages(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page under docs/."""
    readme = [root / "README.md"] if (root / "README.md").is_file() else []
    return readme + sorted((root / "docs").rglob("*.md"))


def page_name(page: Path, root: Path = ROOT) -> str:
    """The page as messages and test ids name it: README.md, docs/training.md."""
    return page.relative_to(root).as_posix()


# ---- fenced blocks -----------------------------------------------------------------------------------------

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\s`]*)")


@dataclass(frozen=True)
class Block:
    """A fenced shell block: its lines as (line number in the page, text without the fence's indentation)."""

    file: str
    line: int
    lines: tuple[tuple[int, str], ...]
    run: bool


def _fences(lines: list[str]):
    """(index of the opening line, index of the closing line, info string, indentation) of each fenced block;
    a fence left open ends with the page."""
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        fence, end = match["fence"], index + 1
        while end < len(lines) and not (lines[end].strip().startswith(fence)
                                        and set(lines[end].strip()) == {fence[0]}):
            end += 1
        yield index, end, match["info"].lower(), len(match["indent"])
        index = end + 1


def _previous_text(lines: list[str], index: int) -> str:
    """The nearest non-blank line above lines[index], stripped."""
    return next((line.strip() for line in reversed(lines[:index]) if line.strip()), "")


def shell_blocks(text: str, file: str) -> list[Block]:
    """The ```bash / ```sh / ```shell blocks of a Markdown page, each marked run or not."""
    lines = text.splitlines()
    return [Block(file, start + 1, tuple((number + 1, _dedent(lines[number], indent))
                                         for number in range(start + 1, end)),
                  run=_previous_text(lines, start) == RUN_MARKER)
            for start, end, info, indent in _fences(lines) if info in SHELL_FENCES]


def _dedent(line: str, indent: int) -> str:
    return line[min(indent, len(line) - len(line.lstrip(" "))):]


def misplaced_run_markers(text: str, file: str) -> list[str]:
    """Every line outside fenced blocks that looks like a marker (an HTML comment naming command-test) but is
    not the run marker, or is the run marker with no shell block next (blank lines between are allowed): the
    block meant would silently not run."""
    lines = text.splitlines()
    fenced = {number for start, end, _, _ in _fences(lines) for number in range(start, end + 1)}
    shell_starts = {start for start, _, info, _ in _fences(lines) if info in SHELL_FENCES}
    problems = []
    for index, line in enumerate(lines):
        if index in fenced or not (line.strip().startswith("<!--") and "command-test" in line):
            continue
        if line.strip() != RUN_MARKER:
            problems.append(f"{file}:{index + 1}: {line.strip()!r} is not the run marker {RUN_MARKER!r}")
            continue
        following = next((later for later in range(index + 1, len(lines)) if lines[later].strip()), None)
        if following not in shell_starts:
            problems.append(f"{file}:{index + 1}: the run marker is not followed by a ```bash block")
    return problems


# ---- logical lines: continuations joined, comments dropped, heredocs skipped ---------------------------------


@dataclass(frozen=True)
class Line:
    """One logical shell line: physical lines first..last of the page, joined as bash joins them."""

    file: str
    first: int
    last: int
    text: str


def strip_comment(line: str) -> str:
    """The line without a comment: `#` starting a word outside quotes, as bash reads it."""
    quote, escaped = None, False
    for index, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


def _continues(line: str) -> bool:
    """Whether bash joins the next line to this one: an unescaped backslash last, outside a comment."""
    code = strip_comment(line)
    return code == line and (len(line) - len(line.rstrip("\\"))) % 2 == 1


_HEREDOC = re.compile(r"(?<!<)<<(?!<)(-?)\s*(['\"]?)([A-Za-z_]\w*)\2")


def logical_lines(block: Block) -> list[Line]:
    """The block's lines as bash reads them: continuations joined, heredoc bodies left out."""
    result, pending, first, heredocs = [], None, 0, []
    for number, text in block.lines:
        if heredocs:
            if text.strip() == heredocs[0]:
                heredocs.pop(0)
            continue
        if pending is None:
            pending, first = "", number
        if _continues(text):
            pending += text[:-1]
            continue
        pending += text
        result.append(Line(block.file, first, number, pending))
        heredocs = [match[3] for match in _HEREDOC.finditer(strip_comment(pending))]
        pending = None
    if pending is not None:
        result.append(Line(block.file, first, block.lines[-1][0], pending))
    return result


# ---- simple commands ---------------------------------------------------------------------------------------

_OPERATOR_CHARS = set("();<>|&")
_ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_PYTHON = re.compile(r"python(3(\.\d+)?)?")
_KEYWORDS = frozenset({"do", "then", "else", "elif", "if", "while", "until", "time", "!", "{", "exec", "nohup"})
MPI_LAUNCHERS = frozenset({"mpiexec", "mpirun"})


def _words(code: str) -> list[str]:
    lexer = shlex.shlex(code, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, ""
    return list(lexer)


def simple_commands(text: str) -> tuple[list[list[str]], str | None]:
    """A logical line cut into simple commands (their words, redirections dropped), and a problem that makes
    the line's commands uncheckable (None if there is none)."""
    code = strip_comment(text)
    problem = None
    if "$(" in code or "`" in code:
        problem = "a command substitution ($(...) or `...`) cannot be checked: write the values out"
    code = re.sub(r"(?:(?<=\s)|^)\d+(?=[<>])", "", code)  # 2>&1, 2>log: the digit names a descriptor
    try:
        words = _words(code)
    except ValueError as error:
        return [], f"the shell cannot split it: {error}"
    commands, current, index = [], [], 0
    while index < len(words):
        word = words[index]
        if not set(word) <= _OPERATOR_CHARS:
            current.append(word)
        elif "<" in word or ">" in word:
            if word == "<" and index + 2 < len(words) and words[index + 2].startswith(">"):
                problem = (f"<{words[index + 1]}> is read by the shell as a redirection: write placeholders as "
                           f"UPPER_CASE words")
            index += 1  # the redirection's target
        elif current:
            commands.append(current)
            current = []
        index += 1
    if current:
        commands.append(current)
    return commands, problem


def _program(words: list[str]) -> str:
    return Path(words[0]).name


def _python_module(words: list[str]) -> str | None:
    """The module of `python ... -m MODULE ...`, else None."""
    if "-m" in words[:-1]:
        return words[words.index("-m") + 1]
    return None


def _is_xlmr_ds_module(module: str | None) -> bool:
    return module is not None and (module == "xlmr_ds" or module.startswith("xlmr_ds."))


def is_manual_command(words: list[str]) -> bool:
    """Whether a simple command (assignments stripped) is one the convention has the test check."""
    program = _program(words)
    if program in ("xlmr-ds", "deepspeed"):
        return True
    if _PYTHON.fullmatch(program):
        return _is_xlmr_ds_module(_python_module(words))
    if program in MPI_LAUNCHERS:
        return any(Path(word).name == "xlmr-ds" for word in words) or _is_xlmr_ds_module(_python_module(words))
    return False


@dataclass(frozen=True)
class Command:
    """A manual command: where it is, the logical line as written, its words as the parser gets them."""

    file: str
    line: int
    index: int
    text: str
    words: tuple[str, ...]
    problem: str | None = None

    @property
    def id(self) -> str:
        """docs/training.md:42, or docs/training.md:42#2 for the second command of line 42."""
        return f"{self.file}:{self.line}" + (f"#{self.index + 1}" if self.index else "")


def commands_in(text: str, file: str) -> list[Command]:
    """Every manual command of a page, in order."""
    found, variables = [], {}
    for block in shell_blocks(text, file):
        for line in logical_lines(block):
            simple, problem = simple_commands(line.text)
            index = 0
            for words in simple:
                while words and words[0] in _KEYWORDS:
                    words = words[1:]
                words = [_VARIABLE.sub(lambda m: variables.get(m[1] or m[2], m[0]), word) for word in words]
                assignments = words[1:] if words[:1] == ["export"] else words
                if assignments and all(_ASSIGNMENT.match(word) for word in assignments):
                    variables.update(word.split("=", 1) for word in assignments)
                    continue
                while words and _ASSIGNMENT.match(words[0]):
                    words = words[1:]  # VAR=value for this command's environment
                if words and is_manual_command(words):
                    found.append(Command(file, line.first, index, " ".join(line.text.split()), tuple(words),
                                         problem))
                    index += 1
    return found


# ---- parsing -----------------------------------------------------------------------------------------------

ENTRY_POINTS = ("xlmr_ds", "xlmr_ds.train", "xlmr_ds.finetune")
"""The modules whose command lines are parsed: python -m and deepspeed --module run these."""

MPI_OPTIONS = {
    **dict.fromkeys(("-n", "-np", "--np", "-c", "-N", "-ppn", "-npernode", "--npernode"), 1),
    **dict.fromkeys(("-hosts", "-host", "--host", "-H", "-f", "-hostfile", "--hostfile", "-machinefile",
                     "--machinefile", "-x", "--bind-to", "-bind-to", "--map-by", "-map-by", "--rank-by",
                     "-iface", "--prefix", "-wdir", "--wdir"), 1),
    **dict.fromkeys(("--mca", "-mca", "-genv", "-env"), 2),
    **dict.fromkeys(("--oversubscribe", "--allow-run-as-root", "-l", "--tag-output", "-tag-output",
                     "-prepend-rank", "--report-bindings", "--display-map", "-genvall", "-v", "--verbose"), 0),
}
"""The mpiexec/mpirun options the manual may use, and how many values each takes."""
_PROCESS_COUNT = re.compile(r"\d+|[A-Z][A-Z0-9_]*|\$\{?\w+\}?")
_PYTHON_SWITCHES = frozenset({"-u", "-O", "-OO", "-B", "-E", "-I", "-s", "-S", "-q"})


PURE_TYPES = (None, str, int, float, positive_int, non_negative_int, positive_float)
"""The argparse types that are functions of the string alone."""
OUTPUT_TYPES = arguments.OUTPUT_TYPES
"""The types that look at the filesystem (xlmr_ds/outputs.py); the checker's parsers take their values as strings."""


def build_real_parser(module: str) -> argparse.ArgumentParser:
    """A fresh parser of an entry point, as the command builds it."""
    if module == "xlmr_ds":
        return build_parser()
    if module == "xlmr_ds.train":
        parser = OneLineErrorParser(prog=train.PROG, help_command=f"python -m {train.MODULE}")
        train.add_arguments(parser)
        return parser
    if module == "xlmr_ds.finetune":
        parser = OneLineErrorParser(prog=finetune.PROG, help_command=f"python -m {finetune.PROG}")
        finetune.add_arguments(parser)
        return parser
    raise ValueError(f"{module} is not one of {ENTRY_POINTS}")


def all_parsers(parser: argparse.ArgumentParser):
    """The parser and every subcommand's parser under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases share a parser
                yield from all_parsers(child)


@functools.cache
def checking_parser(module: str) -> argparse.ArgumentParser:
    """The entry point's parser with abbreviations off and the output-path types taking plain strings."""
    parser = build_real_parser(module)
    for each in all_parsers(parser):
        each.allow_abbrev = False
        for action in each._actions:
            if action.type in OUTPUT_TYPES:
                action.type = None
    return parser


def _parse(parse, argv: list[str]):
    """(parse(argv)'s result, None) or (None, argparse's error line); --help and --version count as parsed."""
    errors = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(errors):
        try:
            return parse(argv), None
        except SystemExit as exit:
            if exit.code in (0, None):
                return None, None
            lines = [line.strip() for line in errors.getvalue().splitlines() if line.strip()]
            return None, lines[-1] if lines else f"exit status {exit.code}"


def _module_problem(module: str, argv: list[str], how: str) -> str | None:
    if module in ENTRY_POINTS:
        return _parse(checking_parser(module).parse_args, argv)[1]
    if not _is_xlmr_ds_module(module):
        return f"{how} {module}: not an xlmr_ds module"
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    source = Path(spec.origin).read_text() if spec and spec.origin and spec.origin.endswith(".py") else ""
    if "__name__ == \"__main__\"" not in source and "__name__ == '__main__'" not in source:
        return f"{how} {module}: no such module with a __main__ block (entry points: {', '.join(ENTRY_POINTS)})"
    return None


def _deepspeed_problem(argv: list[str]) -> str | None:
    from deepspeed.launcher.runner import parse_args

    program, sys.argv[0] = sys.argv[0], "deepspeed"  # the name DeepSpeed's parser gives itself in errors
    try:
        launcher, error = _parse(parse_args, argv)
    finally:
        sys.argv[0] = program
    if error:
        return error
    if launcher is None:  # deepspeed --help
        return None
    if not launcher.module:
        return (f"deepspeed runs {launcher.user_script!r} as a script: the manual's commands run "
                f"`deepspeed [launcher flags] --module` {' or '.join(ENTRY_POINTS)}")
    if launcher.user_script not in ENTRY_POINTS:
        return f"deepspeed --module {launcher.user_script}: the launchers run {', '.join(ENTRY_POINTS)}"
    return _module_problem(launcher.user_script, launcher.user_args, "deepspeed --module")


def _python_problem(words: list[str]) -> str | None:
    index = 1
    while index < len(words) and words[index] != "-m":
        if words[index] in ("-X", "-W"):
            index += 2
        elif words[index] in _PYTHON_SWITCHES:
            index += 1
        else:
            return f"{words[0]}: the option {words[index]!r} before -m is not one the manual uses"
    if index + 1 >= len(words):
        return f"{words[0]}: -m names no module"
    return _module_problem(words[index + 1], words[index + 2:], "python -m")


def _mpi_problem(words: list[str]) -> str | None:
    launcher, index = _program(words), 1
    while index < len(words) and words[index].startswith("-"):
        option, equals, inline = words[index].partition("=")
        if option not in MPI_OPTIONS:
            return (f"{launcher}: unknown option {option!r} (tests/docs/doc_commands.py's MPI_OPTIONS lists the "
                    f"Open MPI and MPICH options the manual may use)")
        count = MPI_OPTIONS[option]
        values = [inline] if equals else words[index + 1:index + 1 + count]
        if len(values) < count:
            return f"{launcher}: {option} needs {count} value(s)"
        if option in ("-n", "-np", "--np", "-c") and not _PROCESS_COUNT.fullmatch(values[0]):
            return f"{launcher}: {option} {values[0]!r} is not a number of processes"
        index += 1 + (0 if equals else count)
    rest = words[index:]
    if rest and _program(rest) == "xlmr-ds":
        return _module_problem("xlmr_ds", rest[1:], "xlmr-ds")
    if rest and _PYTHON.fullmatch(_program(rest)):
        return _python_problem(rest)
    return f"{launcher} runs {rest[0] if rest else 'nothing'!r}: the manual's commands run xlmr-ds or python -m"


def command_problem(command: Command | list[str] | tuple[str, ...]) -> str | None:
    """Why the command line would be refused before it runs, or None when its parsers accept it."""
    if isinstance(command, Command):
        if command.problem:
            return command.problem
        command = command.words
    words = list(command)
    written = next((word for word in words if word == "..." or word.startswith("[-")), None)
    if written == "...":
        return "`...` stands for words left out: write the command whole"
    if written:
        return f"{written!r}: [optional] syntax is not a command line: write the flag, or leave it out"
    program = _program(words)
    if program == "xlmr-ds":
        return _module_problem("xlmr_ds", words[1:], "xlmr-ds")
    if program == "deepspeed":
        return _deepspeed_problem(words[1:])
    if program in MPI_LAUNCHERS:
        return _mpi_problem(words)
    return _python_problem(words)


# ---- running -----------------------------------------------------------------------------------------------

_FAILED_AT = re.compile(r"^command-test: exit (\d+) at script line (\d+)$", re.MULTILINE)


def run_script(blocks: list[Block]) -> tuple[str, dict[int, int]]:
    """The bash script of a page's run blocks, and {script line: page line}."""
    lines = ["trap 'echo \"command-test: exit $? at script line $LINENO\" >&2' ERR"]
    page_line = {}
    for block in blocks:
        lines.append(f"echo 'command-test: block {block.file}:{block.line}' >&2")
        for number, text in block.lines:
            lines.append(text)
            page_line[len(lines)] = number
    return "\n".join(lines) + "\n", page_line


def run_environment() -> dict[str, str]:
    """The test's environment with this interpreter's bin directory first on PATH and DS_ACCELERATOR=cpu."""
    environment = dict(os.environ)
    environment["PATH"] = os.pathsep.join(filter(None, [os.path.dirname(sys.executable), environment.get("PATH")]))
    environment["DS_ACCELERATOR"] = "cpu"
    return environment


def run_blocks(blocks: list[Block], directory: Path, timeout: float = RUN_TIMEOUT_S,
               root: Path = ROOT) -> str | None:
    """Run a page's run blocks in `directory` (made here, with the LINKED_FOLDERS); None when they all
    succeed, else what failed: the page line and its command, and the tail of the output."""
    work = directory / "work"
    work.mkdir(parents=True)
    for name in LINKED_FOLDERS:
        if (root / name).exists():
            (work / name).symlink_to(root / name)
    script, page_line = run_script(blocks)
    (directory / "page.sh").write_text(script)
    log = directory / "output.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(["bash", "-e", str(directory / "page.sh")], cwd=work, env=run_environment(),
                                   stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the job's own processes: bash's group (a new session)
            process.wait()
            code = None
    text = log.read_text(errors="replace")
    if code == 0:
        return None
    tail = "\n".join("    " + line for line in text.splitlines()[-40:])
    file = blocks[0].file
    if code is None:
        return f"{file}: the run blocks did not finish within {timeout:g} s; last lines of output:\n{tail}"
    failed = _FAILED_AT.findall(text)
    number = page_line.get(int(failed[-1][1])) if failed else None
    line = next((line for block in blocks for line in logical_lines(block)
                 if number is not None and line.first <= number <= line.last), None)
    where = f" at {file}:{line.first}:\n    {' '.join(line.text.split())}" if line else ""
    return f"{file}: the run blocks failed (exit {code}){where}\nlast lines of output:\n{tail}"
