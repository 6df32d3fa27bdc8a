import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def pretrained_hf(spm_model, tmp_path_factory) -> Path:
    """A tiny randomly initialized XLM-R with the test tokenizer, as an `xlmr-ds export` directory."""
    from xlmr_ds.model import XLMRForMaskedLM, preset
    from xlmr_ds.model.hf import save_hf
    from xlmr_ds.prep.tokenizer import XLMRTokenizer

    config = preset("tiny", vocab_size=XLMRTokenizer(spm_model).vocab_size, max_position_embeddings=130)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("pretrained") / "hf"
    save_hf(XLMRForMaskedLM(config), out, tokenizer_model=spm_model)
    return out
