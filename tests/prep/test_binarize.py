import re
import subprocess
import sys
from pathlib import Path

import pytest
from megatron.core.datasets.indexed_dataset import IndexedDataset as MegatronIndexedDataset

from xlmr_ds.dataset.indexed import IndexedDataset
from xlmr_ds.dataset.manifest import read_manifest
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.prep.binarize import binarize_corpus
from xlmr_ds.tokenizer import XLMRTokenizer
from xlmr_ds.world import SingleProcess

MPIEXEC = str(Path(sys.executable).parent / "mpiexec")

# Documents that straddle rank ranges, leading/trailing/repeated blank lines, whitespace-only lines,
# CRLF endings, lone CR endings (old Mac text: two documents), Unicode line separators inside a line,
# invalid UTF-8, a genuine U+FFFD, and no newline at the end of the file.
EDGE_CASES = (
    b"\n\n"
    + b"first document line one.\nline two of the first document.\n"
    + b"   \n\t\n"
    + "\u0432\u0442\u043e\u0440\u043e\u0439 \u0434\u043e\u043a\u0443\u043c\u0435\u043d\u0442\r\n".encode()
    + b"bad bytes \xff\xfe here and \xc3 there\n"
    + "a real \ufffd character\n".encode()
    + b"\nold mac document.\rits second line.\r\rthe next old mac document.\r\r"
    + "a line\u2028with a line separator and\x85a next-line character inside\n".encode()
    + b"\n" + b"".join(b"long document sentence %d with words.\n" % i for i in range(40))
    + b"\n\n\nlast line without newline"
)


def reference_dataset(path: Path, tokenizer: XLMRTokenizer):
    """The expected sequences and document indices, computed the simple way from the whole file."""
    sequences, document_indices = [], [0]
    for raw in re.split(rb"\r\n|\r|\n", path.read_bytes().removeprefix("\ufeff".encode())):
        line = raw.decode("utf-8", errors="replace")
        if line.strip():
            sequences.append(tokenizer.encode(line).tolist() + [2])
        elif document_indices[-1] != len(sequences):
            document_indices.append(len(sequences))
    if document_indices[-1] != len(sequences):
        document_indices.append(len(sequences))
    return sequences, document_indices


@pytest.fixture(scope="module")
def corpus_with_edge_cases(corpus_dir, tmp_path_factory):
    directory = tmp_path_factory.mktemp("edge-corpus")
    for source in corpus_dir.glob("*.txt"):
        (directory / source.name).write_bytes(source.read_bytes())
    (directory / "xx.txt").write_bytes(EDGE_CASES)
    (directory / "tiny.txt").write_bytes(b"one line\n")
    (directory / "bom.txt").write_bytes("\ufeffa line after a byte-order mark.\nthe next line.\n".encode())
    (directory / "empty.txt").write_bytes(b"")
    (directory / "blank.txt").write_bytes(b"\n  \n\n")
    return directory


def _run_binarize(corpus, spm_model, out, ranks):
    command = [sys.executable, "-m", "xlmr_ds", "binarize", "--input", str(corpus), "--spm", str(spm_model),
               "--out", str(out), "--no-progress"]
    if ranks > 1:
        command = [MPIEXEC, "-n", str(ranks)] + command
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def outputs(corpus_with_edge_cases, spm_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("binarized")
    results = {}
    for ranks in (1, 2, 3):
        results[ranks] = (root / f"ranks{ranks}", _run_binarize(corpus_with_edge_cases, spm_model,
                                                                root / f"ranks{ranks}", ranks))
    return results


@pytest.mark.multiprocess
@pytest.mark.parametrize("ranks", [2, 3])
def test_output_is_byte_identical_for_any_rank_count(outputs, ranks):
    single, parallel = outputs[1][0], outputs[ranks][0]
    names = sorted(p.name for p in single.iterdir())
    assert names == sorted(p.name for p in parallel.iterdir())
    assert "manifest.json" in names and not any(name.startswith(".") for name in names)
    for name in names:
        assert (single / name).read_bytes() == (parallel / name).read_bytes(), name
    assert f"with {ranks} rank(s)" in outputs[ranks][1].stdout


@pytest.mark.multiprocess
def test_megatron_reads_every_language_and_sequences_are_the_encoded_lines(outputs, corpus_with_edge_cases,
                                                                              spm_model):
    out = outputs[3][0]
    tokenizer = XLMRTokenizer(spm_model)
    for source in sorted(corpus_with_edge_cases.glob("*.txt")):
        expected_sequences, expected_documents = reference_dataset(source, tokenizer)
        if not expected_sequences:
            assert not (out / f"{source.stem}.idx").exists() and not (out / f"{source.stem}.bin").exists()
            continue
        theirs = MegatronIndexedDataset(str(out / source.stem))
        assert theirs.document_indices.tolist() == expected_documents, source.name
        assert [theirs[i].tolist() for i in range(len(theirs))] == expected_sequences, source.name
        ours = IndexedDataset(out / source.stem)
        assert ours.sequence_lengths.tolist() == [len(s) for s in expected_sequences]


@pytest.mark.multiprocess
def test_manifest_counts_and_replaced_characters(outputs, corpus_with_edge_cases, spm_model):
    out = outputs[2][0]
    manifest = read_manifest(out)
    tokenizer = XLMRTokenizer(spm_model)
    assert manifest["tokenizer"]["sha256"] == tokenizer.sha256
    assert (out / "tokenizer.model").read_bytes() == spm_model.read_bytes()  # the dataset carries its tokenizer
    assert manifest["tokenizer"]["vocab_size"] == tokenizer.vocab_size == 502
    assert manifest["dtype"] == "uint16" and manifest["index_format"] == "MMIDIDX v1"
    assert manifest["skipped_languages"] == ["blank", "empty"]
    assert "note: skipped blank, empty: no text" in outputs[2][1].stdout
    for source in corpus_with_edge_cases.glob("*.txt"):
        sequences, documents = reference_dataset(source, tokenizer)
        if source.stem in manifest["skipped_languages"]:
            continue
        stats = manifest["languages"][source.stem]
        assert stats["sequences"] == len(sequences)
        assert stats["documents"] == len(documents) - 1
        assert stats["tokens"] == sum(map(len, sequences))
        assert stats["bytes_read"] == source.stat().st_size
    # \xff, \xfe and the truncated \xc3: three replacements; the genuine U+FFFD is not one.
    assert manifest["languages"]["xx"]["replaced_characters"] == 3
    assert "3 invalid UTF-8 sequence(s) were replaced" in outputs[2][1].stdout


def test_inspect_decodes_the_first_sequences(outputs):
    out = outputs[1][0]
    result = subprocess.run([sys.executable, "-m", "xlmr_ds", "data", "inspect", str(out / "xx"), "-n", "2"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "documents" in result.stdout and "'first document line one.'" in result.stdout


def test_a_run_that_did_not_finish_is_not_taken_for_complete(corpus_dir, spm_model, tmp_path):
    out = tmp_path / "out"
    binarize_corpus(corpus_dir, spm_model, out, SingleProcess(), progress=False)
    assert read_manifest(out)["languages"]
    # A rerun removes the manifest first; simulate it dying right after that.
    (out / "manifest.json").unlink()
    with pytest.raises(XLMRDSError, match="manifest.json: not found; .* is not a complete `xlmr-ds binarize` output"):
        read_manifest(out)


def test_bad_inputs_to_binarize_fail_with_one_line(corpus_dir, spm_model, tmp_path):
    cases = [
        (["--input", str(tmp_path / "nope"), "--spm", str(spm_model)], "corpus directory not found"),
        (["--input", str(corpus_dir), "--spm", str(tmp_path / "x.model")], "x.model: SentencePiece model not found"),
    ]
    for args, message in cases:
        result = subprocess.run([sys.executable, "-m", "xlmr_ds", "binarize", *args, "--out", str(tmp_path / "o")],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 1
        assert result.stderr.strip().count("\n") == 0 and message in result.stderr, result.stderr
    assert not (tmp_path / "o" / "manifest.json").exists()


@pytest.mark.multiprocess
def test_input_errors_under_mpi_are_reported_once(corpus_dir, tmp_path):
    result = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "xlmr_ds", "binarize", "--input",
                             str(corpus_dir), "--spm", str(tmp_path / "x.model"), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stderr.count("SentencePiece model not found") == 1, result.stderr
