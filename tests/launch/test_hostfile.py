"""The hostfile parser: what DeepSpeed would take silently or crash on is a one-line error naming file and line."""

from pathlib import Path

import pytest

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.launch.check import select_hosts
from xlmr_ds.launch.hostfile import read_hostfile

ROOT = Path(__file__).parents[2]

VALID = [
    ("one host", "node1 slots=8\n", [("node1", 8)]),
    ("file order kept", "b slots=1\na slots=2\n", [("b", 1), ("a", 2)]),
    ("comments and blanks", "# two hosts\n\n  node1 slots=2  # the first\n\t\nnode2\tslots=3\n", [("node1", 2), ("node2", 3)]),
    ("addresses and dashes", "10.0.0.5 slots=1\ngpu-node_07.cluster slots=4", [("10.0.0.5", 1), ("gpu-node_07.cluster", 4)]),
    ("windows line ends", "node1 slots=1\r\nnode2 slots=1\r\n", [("node1", 1), ("node2", 1)]),
]


@pytest.mark.parametrize("text,expected", [case[1:] for case in VALID], ids=[case[0] for case in VALID])
def test_valid_hostfiles(tmp_path, text, expected):
    path = tmp_path / "hostfile"
    path.write_text(text)
    assert read_hostfile(path) == expected


INVALID = [
    ("no slots", "node1 slots=1\nnode2\n", r"hostfile:2: 'node2': expected 'HOSTNAME slots=N'"),
    ("slots with spaces", "node1 slots = 4\n", r"hostfile:1: 'node1 slots = 4': expected"),
    ("trailing words", "node1 slots=4 gpus=4\n", r"hostfile:1: 'node1 slots=4 gpus=4': expected"),
    ("zero slots", "node1 slots=1\nnode2 slots=0\n", r"hostfile:2: slots=0 for node2: a host needs at least 1 slot"),
    ("negative slots", "node1 slots=-2\n", r"hostfile:1: slots=-2 for node1: a host needs at least 1 slot"),
    ("slots not a number", "node1 slots=eight\n", r"hostfile:1: slots='eight' is not a whole number"),
    ("duplicate host", "node1 slots=1\nnode2 slots=1\n\nnode1 slots=4\n",
     r"hostfile:4: host node1 is listed twice \(first on line 1\)"),
    ("option-like host", "-oProxyCommand=x slots=1\n", r"hostfile:1: host '-oProxyCommand=x' is not a plain host name"),
    ("list-like host", "a,b slots=1\n", r"hostfile:1: host 'a,b' is not a plain host name"),
    ("only comments", "# nothing\n\n", r"hostfile: names no host"),
    ("empty", "", r"hostfile: names no host"),
]


@pytest.mark.parametrize("text,message", [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_invalid_hostfiles_name_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "hostfile"
    path.write_text(text)
    with pytest.raises(XLMRDSError, match=message) as error:
        read_hostfile(path)
    assert "\n" not in str(error.value) and str(error.value).startswith(str(path))


@pytest.mark.parametrize("content,message", [
    (None, "hostfile not found"), (b"node1 slots=1\n\xff\n", "not UTF-8"),
    ("\ufeffnode1 slots=1\n".encode(), "starts with a byte-order mark, which DeepSpeed's launcher reads as part of"),
], ids=["missing", "binary", "byte-order mark"])
def test_unreadable_hostfiles(tmp_path, content, message):
    path = tmp_path / "hostfile"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(XLMRDSError, match=message):
        read_hostfile(path)


EXAMPLES = [
    ("one_node", [("localhost", 8)]),
    ("two_nodes", [("node1", 8), ("node2", 8)]),
    ("two_nodes_cpu", [("node1", 1), ("node2", 1)]),
    ("four_nodes_subset", [("node1", 8), ("node2", 8), ("node3", 8), ("node4", 8)]),
]


@pytest.mark.parametrize("name,expected", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_example_hostfiles_parse(name, expected):
    assert read_hostfile(ROOT / "hostfiles" / name) == expected


def test_every_example_hostfile_is_listed():
    assert sorted(p.name for p in (ROOT / "hostfiles").iterdir()) == sorted(name for name, _ in EXAMPLES)


# The --include/--exclude lines documented in hostfiles/four_nodes_subset, read by DeepSpeed's own parser.
SELECTIONS = [
    ("include two hosts", "node1:0,1,2,3@node2:0,1,2,3", "", [("node1", 4), ("node2", 4)]),
    ("exclude a host", "", "node4", [("node1", 8), ("node2", 8), ("node3", 8)]),
    ("exclude slots", "", "node1:0,1", [("node1", 6), ("node2", 8), ("node3", 8), ("node4", 8)]),
    ("nothing", "", "", [("node1", 8), ("node2", 8), ("node3", 8), ("node4", 8)]),
]


@pytest.mark.parametrize("include,exclude,expected", [s[1:] for s in SELECTIONS], ids=[s[0] for s in SELECTIONS])
def test_include_exclude_select_what_deepspeed_would(include, exclude, expected):
    hosts = read_hostfile(ROOT / "hostfiles" / "four_nodes_subset")
    assert select_hosts(hosts, include, exclude) == expected


def test_documented_selections_are_the_tested_ones():
    text = (ROOT / "hostfiles" / "four_nodes_subset").read_text()
    for _, include, exclude, _ in SELECTIONS[:2]:
        assert f'--{"include" if include else "exclude"} "{include or exclude}"' in text


BAD_SELECTIONS = [
    ("both", "node1", "node2", "cannot be combined"),
    ("unknown host", "node9", "", r"--include 'node9': Hostname 'node9' not found in hostfile"),
    ("unknown slot", "node1:9", "", r"No slot '9' specified on host 'node1'"),
    ("everything excluded", "", "node1@node2@node3@node4", "leaves no host"),
]


@pytest.mark.parametrize("include,exclude,message", [s[1:] for s in BAD_SELECTIONS], ids=[s[0] for s in BAD_SELECTIONS])
def test_bad_selections_are_user_errors(include, exclude, message):
    hosts = read_hostfile(ROOT / "hostfiles" / "four_nodes_subset")
    with pytest.raises(XLMRDSError, match=message):
        select_hosts(hosts, include, exclude)
