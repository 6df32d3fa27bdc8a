"""The manual's commands keep working: every command line of README.md and docs/*.md is accepted by the real
argument parser (one test per command, named by page and line), the blocks marked `<!-- command-test: run -->`
run (one test per page), and the pages keep their form (line length, README's length, no file cited from
outside the repository). How commands are read, parsed and run: tests/docs/doc_commands.py.

The checker itself is tested on in-memory pages (CHECKER_CASES and the tests after it): it must refuse what a
user's shell or parser would refuse, and accept placeholders, comments and environment assignments.
"""

from __future__ import annotations

import argparse
import os
import sys

import pytest
from doc_commands import (
    ENTRY_POINTS,
    OUTPUT_TYPES,
    PURE_TYPES,
    ROOT,
    all_parsers,
    build_real_parser,
    command_problem,
    commands_in,
    manual_pages,
    misplaced_run_markers,
    page_name,
    run_blocks,
    shell_blocks,
)

PAGES = manual_pages()
COMMANDS = [command for page in PAGES for command in commands_in(page.read_text(), page_name(page))]
RUN_PAGES = [page for page in PAGES if any(block.run for block in shell_blocks(page.read_text(), page_name(page)))]
LONGEST_LINE = 120
"""Characters; pages wrap at about 110 (code lines too: a long command continues with ` \\`)."""
README_LINES = 160
"""README.md is the front page; each task has its page under docs/."""
OUTSIDE_THE_REPOSITORY = ("facts.md", "../shared")
"""Files the manual's writers had beside the repository; a reader of the manual has neither."""


# ---- the manual --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=[command.id for command in COMMANDS])
def test_the_command_is_accepted_by_its_parser(command):
    problem = command_problem(command)
    assert problem is None, f"{command.id}: {command.text}\n{problem}"


@pytest.mark.slow
@pytest.mark.multiprocess
@pytest.mark.parametrize("page", RUN_PAGES, ids=[page_name(page) for page in RUN_PAGES])
def test_the_run_blocks_of_the_page_succeed(page, tmp_path):
    blocks = [block for block in shell_blocks(page.read_text(), page_name(page)) if block.run]
    failure = run_blocks(blocks, tmp_path)
    assert failure is None, failure


@pytest.mark.parametrize("page", PAGES, ids=[page_name(page) for page in PAGES])
def test_every_run_marker_is_followed_by_a_bash_block(page):
    misplaced = misplaced_run_markers(page.read_text(), page_name(page))
    assert not misplaced, "\n".join(misplaced)


@pytest.mark.parametrize("page", PAGES, ids=[page_name(page) for page in PAGES])
def test_no_line_is_longer_than_120_characters(page):
    long = [f"{page_name(page)}:{number}: {len(line)} characters"
            for number, line in enumerate(page.read_text().splitlines(), 1) if len(line) > LONGEST_LINE]
    assert not long, f"lines over {LONGEST_LINE} characters (wrap at about 110):\n" + "\n".join(long)


def test_the_readme_has_at_most_160_lines():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= README_LINES, f"README.md has {lines} lines; move the details to a page under docs/"


CITABLE = [ROOT / "README.md", *sorted(path for path in (ROOT / "docs").rglob("*") if path.is_file())]


@pytest.mark.parametrize("path", CITABLE, ids=[page_name(path) for path in CITABLE])
def test_no_page_cites_a_file_outside_the_repository(path):
    lines = path.read_bytes().decode(errors="replace").splitlines()
    cited = [f"{page_name(path)}:{number}: {name}" for number, line in enumerate(lines, 1)
             for name in OUTSIDE_THE_REPOSITORY if name in line]
    assert not cited, "files outside the repository, which a reader does not have:\n" + "\n".join(cited)


# ---- the checker, on in-memory pages -----------------------------------------------------------------------

# Each row: (what it shows, the lines of one ```bash block holding one command, None where the command must be
# accepted, else a fragment of the problem reported).
CHECKER_CASES = [
    ("misspelt flag", "xlmr-ds binarize --inptu X --spm M --out O", "required: --input"),
    ("misspelt optional flag", "xlmr-ds binarize --input X --spm M --out O --text-feld t",
     "unrecognized arguments: --text-feld"),
    ("abbreviated flag", "xlmr-ds binarize --input X --spm M --out O --no-progr", "unrecognized arguments: --no-progr"),
    ("unknown subcommand", "xlmr-ds binarise --input X --spm M --out O", "invalid choice: 'binarise'"),
    ("unknown command of a group", "xlmr-ds spm trian --input X --out O", "invalid choice: 'trian'"),
    ("bad choice", "xlmr-ds train --deepspeed_config C --data D --model huge", "invalid choice: 'huge'"),
    ("bad value", "xlmr-ds train --deepspeed_config C --data D --steps -3", "-3 must be at least 1"),
    ("missing required flag", "xlmr-ds finetune --task pair-classification --model M --train T --test en=T",
     "required: --out"),
    ("deepspeed train, misspelt flag",
     "deepspeed --num_gpus 2 --module xlmr_ds.train --deepspeed_config C --data D --stpes 10",
     "unrecognized arguments: --stpes"),
    ("deepspeed finetune, missing required flag",
     "deepspeed --num_gpus 2 --module xlmr_ds.finetune --task pair-classification --model M --train T "
     "--test en=T", "required: --out"),
    ("deepspeed, unknown launcher flag", "deepspeed --gpus 2 --module xlmr_ds.train --deepspeed_config C --data D",
     "unrecognized arguments: --gpus"),
    ("deepspeed running a script", "deepspeed train.py --deepspeed_config C --data D", "as a script"),
    ("deepspeed, not an entry point", "deepspeed --module xlmr_ds.cli.train --deepspeed_config C --data D",
     "the launchers run"),
    ("mpiexec, unknown option", "mpiexec --nprocs 2 xlmr-ds binarize --input X --spm M --out O",
     "unknown option '--nprocs'"),
    ("mpiexec, misspelt flag", "mpiexec -n 2 xlmr-ds binarize --input X --spm M --out O --no-progess",
     "unrecognized arguments: --no-progess"),
    ("mpiexec, no process count", "mpiexec -n two xlmr-ds binarize --input X --spm M --out O",
     "not a number of processes"),
    ("python -m train, missing required flag", "python -m xlmr_ds.train --data D", "required: --deepspeed_config"),
    ("python -m, no such module", "python -m xlmr_ds.trainer --data D", "no such module"),
    ("continuation line", "xlmr-ds binarize --input X --spm M \\\n    --out O --bogus",
     "unrecognized arguments: --bogus"),
    ("a space after the backslash ends the command", "xlmr-ds binarize --input X \\ \n    --spm M --out O",
     "required: --spm, --out"),
    ("words left out", "deepspeed --num_gpus 2 --module xlmr_ds.train ... --resume auto", "`...`"),
    ("[optional] syntax", "xlmr-ds eval retrieval --model H --pairs de=a:b [--layer 6] --out D", "[optional]"),
    ("<placeholder>", "xlmr-ds export --ckpt <ckpt> --out HF_DIR", "redirection"),
    ("command substitution", "xlmr-ds finetune --task pair-classification --model M --train T "
                             "--test $(echo en=T) --out O", "command substitution"),
    ("a number written as a placeholder", "xlmr-ds train --deepspeed_config C --data D --steps STEPS",
     "invalid int value: 'STEPS'"),
    # accepted
    ("environment assignments", "DS_ACCELERATOR=cpu OMP_NUM_THREADS=1 xlmr-ds info --model tiny", None),
    ("environment assignment before deepspeed",
     "DS_ACCELERATOR=cpu deepspeed --num_gpus 2 --module xlmr_ds.train \\\n"
     "    --deepspeed_config ds_configs/tiny_cpu_zero2.json --data DATA --save runs/base/ckpt", None),
    ("placeholders", "xlmr-ds binarize --input CORPUS --spm SPM --out DATA", None),
    ("an absolute placeholder path", "xlmr-ds corpus demo --out /shared/demo/source --scale 0.02", None),
    ("shell variables", "xlmr-ds binarize --input \"$CORPUS\" --spm \"${SPM}\" --out \"$DATA\"", None),
    ("a variable the page assigns", "STEPS=20\nxlmr-ds train --deepspeed_config C --data D --steps \"$STEPS\"",
     None),
    ("comments", "# xlmr-ds binarize --bogus\nxlmr-ds info --model tiny   # the parameter count", None),
    ("continuation lines", "xlmr-ds binarize --input X \\\n    --spm M \\\n    --out O", None),
    ("pipe and redirections", "xlmr-ds info --model tiny 2>&1 | head -5 > info.txt", None),
    ("a quoted <mask>", "xlmr-ds fill-mask --model HF_DIR \"Das ist ein <mask> Haus.\"", None),
    ("--help", "xlmr-ds train --help", None),
    ("python -m xlmr_ds", "python -m xlmr_ds info --model tiny", None),
    ("the venv's xlmr-ds", ".venv/bin/xlmr-ds info --model tiny", None),
    ("python -m of a module with a __main__ block", "python -m xlmr_ds.accelerator", None),
    ("mpiexec, MPICH's -hosts", "mpiexec -hosts node1,node2 -n 32 xlmr-ds binarize --input CORPUS --spm SPM "
                                "--out DATA", None),
    ("mpirun, placeholder count, python -m", "mpirun -n N python -m xlmr_ds.train --deepspeed_config C --data D",
     None),
    ("deepspeed --module xlmr_ds", "deepspeed --num_gpus 2 --module xlmr_ds eval transfer --ckpt RUN "
                                   "--task-config xnli.json", None),
    ("deepspeed, several nodes", "deepspeed --hostfile hostfiles/two_nodes --master_addr node1 --module "
                                 "xlmr_ds.train --deepspeed_config C --data DATA", None),
]


@pytest.mark.parametrize("block,expected", [case[1:] for case in CHECKER_CASES], ids=[c[0] for c in CHECKER_CASES])
def test_the_checker_refuses_what_the_parser_refuses(block, expected):
    commands = commands_in(f"# A page\n\n```bash\n{block}\n```\n", "docs/case.md")
    assert len(commands) == 1, commands
    problem = command_problem(commands[0])
    if expected is None:
        assert problem is None, problem
    else:
        assert problem is not None and expected in problem, problem


def test_a_continued_command_is_named_by_its_first_line():
    page = "# A page\n\n```bash\nxlmr-ds info --model tiny\n\nxlmr-ds binarize --input X \\\n    --spm M \\\n" \
           "    --out O --bogus\n```\n"
    commands = commands_in(page, "docs/case.md")
    assert [command.id for command in commands] == ["docs/case.md:4", "docs/case.md:6"]
    assert commands[1].text == "xlmr-ds binarize --input X --spm M --out O --bogus"


def test_each_command_of_a_line_is_checked():
    page = "```bash\nxlmr-ds export --ckpt C --out H && xlmr-ds fill-mask --model H --topk 3 'a <mask>'\n```\n"
    commands = commands_in(page, "README.md")
    assert [command.id for command in commands] == ["README.md:2", "README.md:2#2"]
    assert command_problem(commands[0]) is None
    assert "unrecognized arguments: --topk" in command_problem(commands[1])


def test_only_command_lines_of_shell_blocks_are_commands():
    page = "\n".join([
        "xlmr-ds bogus in prose",
        "```text", "xlmr-ds bogus in a text block", "```",
        "```json", '{"xlmr-ds": "bogus"}', "```",
        "```bash",
        "make demo",
        "pip install -e .",
        "echo xlmr-ds bogus",
        "cat > notes.txt <<'EOF'", "xlmr-ds bogus in a heredoc", "EOF",
        "for n in 1 2; do xlmr-ds info --model tiny; done",
        "python benchmarks/kernel_sweep.py",
        "  ```",
        "```sh", "xlmr-ds info --model small", "```",
    ])
    commands = commands_in(page, "docs/case.md")
    assert [(command.id, command.words) for command in commands] == [
        ("docs/case.md:15", ("xlmr-ds", "info", "--model", "tiny")),
        ("docs/case.md:19", ("xlmr-ds", "info", "--model", "small")),
    ]


def test_the_checkers_parsers_take_placeholder_paths_the_real_ones_check_on_disk(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("a file where the placeholder wants a directory\n")
    argv = ["corpus", "demo", "--out", "runs/base", "--scale", "0.02"]
    with pytest.raises(SystemExit):
        build_real_parser("xlmr_ds").parse_args(argv)
    assert "runs is a file" in capsys.readouterr().err
    assert command_problem(["xlmr-ds", *argv]) is None


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_the_parsers_type_functions_read_no_files(module):
    """Only the OUTPUT_TYPES look at the disk (the checker's parsers replace them); a new type or action class
    must be classified in tests/docs/doc_commands.py before the command test can be trusted with it."""
    unknown = [f"{parser.prog} {'/'.join(action.option_strings) or action.dest}: type {action.type!r}, "
               f"action {type(action).__name__}"
               for parser in all_parsers(build_real_parser(module)) for action in parser._actions
               if action.type not in PURE_TYPES + OUTPUT_TYPES or type(action).__module__ != argparse.__name__]
    assert unknown == []


# ---- run blocks and markers, on in-memory pages ------------------------------------------------------------


def test_run_markers_are_found_and_misplaced_ones_reported():
    page = "\n".join([
        "<!-- command-test: run -->", "```bash", "xlmr-ds info --model tiny", "```",
        "<!-- command-test: run -->", "", "```bash", "xlmr-ds info --model small", "```",
        "```bash", "xlmr-ds info --model base", "```",
        "<!-- command-test: run -->", "```text", "output", "```",
        "<!-- command-test: runs -->", "```bash", "true", "```",
        "A page may name the marker, `<!-- command-test: run -->`, in prose or quote it in a block:",
        "```markdown", "<!-- command-test: run -->", "```bash", "```",
    ])
    assert [block.run for block in shell_blocks(page, "docs/case.md")] == [True, True, False, False]
    assert misplaced_run_markers(page, "docs/case.md") == [
        "docs/case.md:13: the run marker is not followed by a ```bash block",
        "docs/case.md:17: '<!-- command-test: runs -->' is not the run marker '<!-- command-test: run -->'",
    ]


def _run_blocks_of(page: str):
    return [block for block in shell_blocks(page, "docs/case.md") if block.run]


def test_run_blocks_run_in_order_in_one_directory_with_the_repositorys_folders(tmp_path):
    bin_dir = os.path.dirname(sys.executable)
    page = "\n".join([
        "<!-- command-test: run -->", "```bash", "DEMO=demo", "mkdir -p $DEMO && echo made > $DEMO/a.txt", "```",
        "```bash", "false  # not a run block", "```",
        "<!-- command-test: run -->", "```bash",
        'test "$(cat $DEMO/a.txt)" = made',
        "test -f ds_configs/tiny_cpu_zero2.json && test -d recipes",
        f'test "$(dirname "$(command -v xlmr-ds)")" = {bin_dir} && test "$DS_ACCELERATOR" = cpu',
        "```",
    ])
    assert run_blocks(_run_blocks_of(page), tmp_path) is None


def test_a_failing_run_block_names_its_line_and_command(tmp_path):
    page = "\n".join([
        "<!-- command-test: run -->", "```bash", "echo first block", "```", "",
        "<!-- command-test: run -->", "```bash", "echo second block", "ls \\", "    no-such-file", "echo never",
        "```",
    ])
    failure = run_blocks(_run_blocks_of(page), tmp_path)
    assert failure is not None
    assert "docs/case.md: the run blocks failed (exit 2) at docs/case.md:9:\n    ls no-such-file\n" in failure
    assert "second block" in failure and "no-such-file" in failure.split("last lines of output:")[1]
    assert "never" not in failure


def test_a_hanging_run_block_is_stopped(tmp_path):
    page = "<!-- command-test: run -->\n```bash\nsleep 60\n```\n"
    failure = run_blocks(_run_blocks_of(page), tmp_path, timeout=1)
    assert failure is not None and "did not finish within 1 s" in failure
