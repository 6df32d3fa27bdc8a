"""JSON files users hand us (DeepSpeed configs, recipes, model configs, task files) are read as they come, a
byte-order mark included, or refused in one line that names the file."""

import pytest

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.jsonfile import read_json_object

# (name, the file's bytes (None: a directory), the object read or the error expected)
CASES = [
    ("plain", b'{"a": 1}', {"a": 1}),
    ("byte-order mark", '\ufeff{"a": 1}'.encode(), {"a": 1}),
    ("byte-order mark and CRLF", '\ufeff{\r\n "a": [1, 2]\r\n}\r\n'.encode(), {"a": [1, 2]}),
    ("not an object", b"[1]", XLMRDSError("a recipe must be a JSON object")),
    ("invalid", b'{"a": }', XLMRDSError("invalid JSON at line 1 column 7")),
    ("not UTF-8", b'{"a": "\xff"}', XLMRDSError("not UTF-8 text (byte 7); expected a recipe in JSON")),
    ("a directory", None, XLMRDSError("is a directory, expected a recipe (a JSON file)")),
]


@pytest.mark.parametrize("content,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_json_files_as_users_save_them(tmp_path, content, expected):
    path = tmp_path / "recipe.json"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    if isinstance(expected, XLMRDSError):
        with pytest.raises(XLMRDSError) as raised:
            read_json_object(path, "recipe")
        assert str(expected) in str(raised.value) and str(raised.value).startswith(str(path))
    else:
        assert read_json_object(path, "recipe") == expected
