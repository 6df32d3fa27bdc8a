"""The one mapping between SentencePiece ids and XLM-R ids, used everywhere; and the tokenizers that give XLM-R ids.

XLM-R ids follow fairseq's dictionary of XLM-R (xlmr_ds/vocab.py): <s>=0, <pad>=1, </s>=2, <unk>=3, then
every SentencePiece piece p >= 3 gets id p + 1, and <mask> is the last id. The SentencePiece model must keep its
default specials (unk=0, <s>=1, </s>=2, no pad), as the released XLM-R sentencepiece.bpe.model does and as
`xlmr-ds spm train` writes; so vocab_size = pieces + 2.

`Tokenizer` is what fine-tuning, retrieval and evaluation ask of a tokenizer. Two files give one: a SentencePiece
model (`XLMRTokenizer`: binarizing, vocabulary extension and everything else xlmr-ds writes) and a `tokenizers`
tokenizer.json (`FastTokenizer`: what transformers 5's XLMRobertaTokenizer saves, without sentencepiece.bpe.model),
accepted when its ids are XLM-R's. `tokenizer_of_directory` picks by what a Hugging Face directory holds.
"""

from __future__ import annotations

import bisect
import hashlib
import unicodedata
from abc import ABC, abstractmethod
from functools import cached_property
from pathlib import Path

import numpy as np
import sentencepiece as spm
import tokenizers

from xlmr_ds import vocab
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.vocab import BOS_ID, EOS_ID, SPECIAL_TOKENS, UNK_ID

# SentencePiece's own specials and where they land.
_SPM_UNK, _SPM_BOS, _SPM_EOS = 0, 1, 2
_FIRST_PIECE = 3

HF_SPM_FILE = "sentencepiece.bpe.model"
"""The SentencePiece model in a Hugging Face directory (what `xlmr-ds export --spm` and transformers 4 write)."""

HF_TOKENIZER_JSON = "tokenizer.json"
"""The `tokenizers` file in a Hugging Face directory (all that transformers 5's XLMRobertaTokenizer saves)."""

WORD_START = "\u2581"
"""SentencePiece's word-boundary mark: a piece that is only this covers no character of the text."""


UNSPACED_SCRIPTS = frozenset({"CJK", "THAI", "LAO", "KHMER", "MYANMAR"})
"""Scripts written without spaces between words: there a piece without the word-boundary mark can be a word."""


def letter_script(character: str) -> str:
    """The Unicode script family of a letter, from its name (LATIN, CYRILLIC, CJK, HIRAGANA, ...)."""
    name = unicodedata.name(character, "")
    return "CJK" if name.startswith(("CJK", "HIRAGANA", "KATAKANA")) else name.split(" ")[0]


def is_word_piece(piece: str, scripts: set[str] | None = None) -> bool:
    """Whether a piece is the start of a word: letters and the marks that go with them (Thai vowels, Devanagari
    matras), after the boundary mark ▁ (which a script written without spaces may lack), all in one of `scripts`
    when given. What a model that learned something answers, rather than `▁`, punctuation or the inside of a
    word such as `s`."""
    word = piece.removeprefix(WORD_START)
    if not word or not unicodedata.category(word[0]).startswith("L"):
        return False
    if not all(unicodedata.category(c)[0] in "LM" and (scripts is None or letter_script(c) in scripts) for c in word):
        return False
    return piece.startswith(WORD_START) or letter_script(word[0]) in UNSPACED_SCRIPTS


def is_whole_word(pieces: list[str], position: int) -> bool:
    """Whether pieces[position] is a word on its own: a word piece of at least two letters (one in a script
    written without spaces) that the next piece does not continue (it starts a word, or is not a letter)."""
    piece = pieces[position]
    if not is_word_piece(piece) or position + 1 >= len(pieces):
        return False
    word = piece.removeprefix(WORD_START)
    unspaced = letter_script(word[0]) in UNSPACED_SCRIPTS
    if len(word) < (1 if unspaced else 2):
        return False
    following = pieces[position + 1]
    if unspaced:  # no boundary mark to go by: a word is a piece of letters followed by something else
        return not following[:1].isalpha() or following.startswith(WORD_START)
    return following.startswith(WORD_START) or unicodedata.category(following[0])[0] not in "LM"


class Tokenizer(ABC):
    """Text to XLM-R ids (<s> and </s> left to the caller), whichever file the tokenizer was read from."""

    model_file: Path
    """The file it was read from; a fine-tuned model's directory gets a copy."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of XLM-R ids, <mask> (the last) included."""

    @property
    def mask_id(self) -> int:
        return vocab.mask_id(self.vocab_size)

    @property
    def special_ids(self) -> tuple[int, ...]:
        """Ids that MLM masking never chooses."""
        return vocab.special_ids(self.vocab_size)

    @abstractmethod
    def encode_batch(self, lines: list[str]) -> list[np.ndarray]:
        """XLM-R ids of each line, without <s> or </s>."""

    @abstractmethod
    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """XLM-R ids of `text` and the characters [begin, end) of `text` each piece covers, leading whitespace
        left out (`▁Paris` covers "Paris"; a bare `▁` covers nothing)."""

    def encode(self, text: str) -> np.ndarray:
        return self.encode_batch([text])[0]

    @abstractmethod
    def decode(self, xlmr_ids) -> str:
        """The text of XLM-R ids; <pad> and <mask> are left out."""

    @abstractmethod
    def id_to_piece(self, xlmr_id: int) -> str:
        """The piece (or special token) of an XLM-R id."""


class XLMRTokenizer(Tokenizer):
    """A SentencePiece model, its ids moved to XLM-R's."""

    def __init__(self, model_file: str | Path):
        self.model_file = Path(model_file)
        if not self.model_file.is_file():
            raise XLMRDSError(f"{self.model_file}: SentencePiece model not found")
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.Load(str(self.model_file))
        except (OSError, RuntimeError) as error:
            raise XLMRDSError(f"{self.model_file}: not a SentencePiece model ({error})") from None
        specials = (self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id())
        if specials != (_SPM_UNK, _SPM_BOS, _SPM_EOS) or self.sp.pad_id() != -1:
            raise XLMRDSError(
                f"{self.model_file}: SentencePiece specials are unk={specials[0]} bos={specials[1]} "
                f"eos={specials[2]} pad={self.sp.pad_id()}; XLM-R needs unk=0 bos=1 eos=2 and no pad"
            )

    @property
    def pieces(self) -> int:
        """Size of the SentencePiece vocabulary (250,000 for the released XLM-R model)."""
        return self.sp.GetPieceSize()

    @property
    def vocab_size(self) -> int:
        """Number of XLM-R ids: <s> <pad> </s> <unk>, the pieces from SentencePiece id 3, and <mask>."""
        return self.pieces + 2

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.model_file.read_bytes()).hexdigest()

    def _xlmr_id_table(self, dtype: np.dtype) -> np.ndarray:
        """XLM-R id of each SentencePiece id, in `dtype` (one table per dtype, built once)."""
        tables = self.__dict__.setdefault("_xlmr_id_tables", {})
        dtype = np.dtype(dtype)
        if dtype not in tables:
            table = np.arange(1, self.pieces + 1, dtype=np.int64)
            table[[_SPM_UNK, _SPM_BOS, _SPM_EOS]] = UNK_ID, BOS_ID, EOS_ID
            tables[dtype] = table.astype(dtype)
        return tables[dtype]

    def to_xlmr_ids(self, spm_ids: np.ndarray, dtype: np.dtype = np.int64) -> np.ndarray:
        """SentencePiece ids -> XLM-R ids in `dtype` (one table lookup per id)."""
        return self._xlmr_id_table(dtype)[np.asarray(spm_ids, dtype=np.int64)]

    def to_spm_ids(self, xlmr_ids) -> list[int]:
        """XLM-R ids -> SentencePiece ids; <pad> and <mask> have none and are dropped."""
        out = []
        for i in np.asarray(xlmr_ids).tolist():
            if i == UNK_ID:
                out.append(_SPM_UNK)
            elif i == BOS_ID:
                out.append(_SPM_BOS)
            elif i == EOS_ID:
                out.append(_SPM_EOS)
            elif _FIRST_PIECE + 1 <= i < self.mask_id:
                out.append(i - 1)
        return out

    def encode_batch(self, lines: list[str]) -> list[np.ndarray]:
        return [self.to_xlmr_ids(ids) for ids in self.sp.Encode(lines)]

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """As Tokenizer says, from SentencePiece's own alignment."""
        proto = self.sp.EncodeAsProto(text)
        # SentencePiece aligns pieces to UTF-8 byte offsets of the original text; map them to characters.
        byte_starts = np.cumsum([0] + [len(char.encode("utf-8")) for char in text]).tolist()
        ids, spans = [], []
        for piece in proto.pieces:
            begin = bisect.bisect_left(byte_starts, piece.begin)
            end = bisect.bisect_left(byte_starts, piece.end)
            while begin < end and text[begin].isspace():
                begin += 1
            ids.append(piece.id)
            spans.append((begin, end))
        return self.to_xlmr_ids(ids).tolist(), spans

    def encode_lines_with_eos(self, lines: list[str], num_threads: int = 1,
                              dtype: np.dtype = np.int64) -> tuple[np.ndarray, np.ndarray]:
        """All lines' XLM-R ids, each followed by </s>, back to back; and each line's length including </s>.

        SentencePiece appends its </s> (id 2, which is also XLM-R's) and returns NumPy arrays, and the id
        mapping runs once per batch: this is the binarizer's hot loop.
        """
        if not lines:
            return np.empty(0, dtype=dtype), np.empty(0, dtype=np.int32)
        if self._encode_buffers is not None:
            buffers = self._encode_buffers(lines, num_threads)
            flat = np.frombuffer(b"".join(buffers), dtype=np.int32)
            # Every line ends with </s>, which SentencePiece never produces from text (a control piece): the
            # ends give the lengths without touching each line again; a count that disagrees means this model
            # does produce it, and the lengths are taken line by line.
            ends = np.flatnonzero(flat == _SPM_EOS)
            if len(ends) == len(lines):
                lengths = np.diff(ends, prepend=-1).astype(np.int32)
            else:
                lengths = np.fromiter((memoryview(b).nbytes // 4 for b in buffers), dtype=np.int32, count=len(buffers))
        else:
            encoded = self.sp.Encode(lines, out_type="numpy", add_eos=True, num_threads=num_threads)
            lengths = np.fromiter(map(len, encoded), dtype=np.int32, count=len(encoded))
            flat = np.concatenate(encoded)
        return self.to_xlmr_ids(flat, dtype), lengths

    @cached_property
    def _encode_buffers(self):
        """SentencePiece's batch encoder to raw int32 buffers, one per line, with </s> appended; or None.

        The public `Encode(out_type="numpy")` wraps every line's buffer in its own NumPy array, which costs a
        quarter of the encoding itself; joining the buffers directly puts the binarizer at SentencePiece's own
        speed. The call is private to sentencepiece (0.2.1 and later, pybind11), so it is used only if it
        exists and gives exactly what the public call gives on a probe; otherwise the public call is used.
        """
        encode = getattr(getattr(self.sp, "_processor", None), "_EncodeAsBufferBatch", None)
        if encode is None:
            return None

        def buffers(lines: list[str], num_threads: int):
            # (input, num_threads, thread_pool, enable_sampling, nbest_size, alpha, add_bos, add_eos, reverse)
            return encode(lines, num_threads, None, False, -1, 0.1, False, True, False)

        probe = ["Probe line one.", "", "zwei Wörter \u4e2d\u6587 \u2581", "x" * 40]
        try:
            got = [np.frombuffer(b, dtype=np.int32) for b in buffers(probe, 1)]
        except (TypeError, ValueError, RuntimeError):
            return None
        expected = self.sp.Encode(probe, out_type="numpy", add_eos=True)
        if len(got) != len(expected) or not all(np.array_equal(a, b) for a, b in zip(got, expected)):
            return None
        return buffers

    def decode(self, xlmr_ids) -> str:
        return self.sp.Decode(self.to_spm_ids(xlmr_ids))

    def id_to_piece(self, xlmr_id: int) -> str:
        for name, special in SPECIAL_TOKENS.items():
            if xlmr_id == special:
                return name
        if xlmr_id == self.mask_id:
            return "<mask>"
        return self.sp.IdToPiece(xlmr_id - 1)


# Mixed-script text that a tokenizer.json is tried on: every id it gives must be a piece (<unk> included).
_SAMPLE_TEXT = ("The quick brown fox jumps over the lazy dog. Съешь же ещё этих мягких булок. Γειά σου κόσμε. "
                "مرحبا بالعالم. नमस्ते दुनिया. 今日は良い天気です。 你好，世界。 12,345.67 — «ok»")


class FastTokenizer(Tokenizer):
    """A `tokenizers` tokenizer.json, accepted when its ids are XLM-R's: <s>=0, <pad>=1, </s>=2, <unk>=3 and
    <mask> last, and text encoded to pieces between them. Ids and offsets are those of transformers'
    AutoTokenizer on the same file, except that a bare `▁` covers nothing (as XLMRTokenizer's)."""

    def __init__(self, tokenizer_file: str | Path):
        self.model_file = Path(tokenizer_file)
        if not self.model_file.is_file():
            raise XLMRDSError(f"{self.model_file}: tokenizer.json not found")
        try:
            self.backend = tokenizers.Tokenizer.from_file(str(self.model_file))
        except Exception as error:  # tokenizers raises a bare Exception for a file it cannot read
            raise XLMRDSError(f"{self.model_file}: not a tokenizers tokenizer.json ({error})") from None
        # Settings saved with the file (padding to a length, truncation) would change what callers cut and pad.
        self.backend.no_padding()
        self.backend.no_truncation()
        self._check_xlmr_ids()

    def _check_xlmr_ids(self) -> None:
        needed = (f"xlmr-ds needs XLM-R's ids: <s>=0, <pad>=1, </s>=2, <unk>=3 and <mask> last "
                  f"(id {self.mask_id} of its {self.vocab_size:,})")
        for token, wanted in {**SPECIAL_TOKENS, "<mask>": self.mask_id}.items():
            found = self.backend.token_to_id(token)
            if found != wanted:
                raise XLMRDSError(f"{self.model_file}: {token} is {'missing' if found is None else f'id {found}'}; "
                                  f"{needed}")
        ids = self.encode(_SAMPLE_TEXT)
        stray = ids[(ids < UNK_ID) | (ids >= self.mask_id)]
        if stray.size:
            raise XLMRDSError(f"{self.model_file}: plain text encodes to id {stray[0]} "
                              f"({self.id_to_piece(int(stray[0]))!r}), not a piece; {needed}")

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode_batch(self, lines: list[str]) -> list[np.ndarray]:
        encodings = self.backend.encode_batch(list(lines), add_special_tokens=False)
        return [np.asarray(encoding.ids, dtype=np.int64) for encoding in encodings]

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """As Tokenizer says. tokenizers gives a bare `▁` the span of the character it stands before (the
        boundary mark is prepended to the word); here it covers nothing, as SentencePiece's alignment has it."""
        encoding = self.backend.encode(text, add_special_tokens=False)
        spans = []
        for piece, (begin, end) in zip(encoding.tokens, encoding.offsets, strict=True):
            while begin < end and text[begin].isspace():
                begin += 1
            spans.append((begin, begin) if piece == WORD_START else (begin, end))
        return list(encoding.ids), spans

    def decode(self, xlmr_ids) -> str:
        return self.backend.decode([int(i) for i in np.asarray(xlmr_ids).tolist()], skip_special_tokens=True)

    def id_to_piece(self, xlmr_id: int) -> str:
        return self.backend.id_to_token(int(xlmr_id))


def tokenizer_of_directory(directory: str | Path) -> Tokenizer:
    """The tokenizer of a Hugging Face directory: its sentencepiece.bpe.model (what xlmr-ds binarizes with), else
    its tokenizer.json (a directory transformers 5 wrote)."""
    directory = Path(directory)
    if (directory / HF_SPM_FILE).is_file():
        return XLMRTokenizer(directory / HF_SPM_FILE)
    if (directory / HF_TOKENIZER_JSON).is_file():
        return FastTokenizer(directory / HF_TOKENIZER_JSON)
    raise XLMRDSError(f"{directory}: no {HF_SPM_FILE} or {HF_TOKENIZER_JSON}, so its text cannot be tokenized; save "
                      f"the model with its tokenizer (`xlmr-ds export --spm MODEL`, or transformers' "
                      f"tokenizer.save_pretrained into the directory)")

