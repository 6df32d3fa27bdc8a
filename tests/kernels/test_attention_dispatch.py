import pytest
import torch

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.kernels import (
    DEPRECATED_KERNEL_BACKEND_ENV,
    KERNEL_BACKEND_ENV,
    attention,
    dispatch,
    resolve_kernel_backend,
)
from xlmr_ds.kernels.reference import eager_attention, key_padding_bias


@pytest.fixture(autouse=True)
def no_backend_forced(monkeypatch):
    """Each test sets the variables it is about; one set in the shell that runs the tests must not count."""
    monkeypatch.delenv(KERNEL_BACKEND_ENV, raising=False)
    monkeypatch.delenv(DEPRECATED_KERNEL_BACKEND_ENV, raising=False)


def _inputs(batch=2, heads=3, seq=10, dim=16, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, seq, dim, generator=generator, dtype=dtype) for _ in range(3))
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[1, 6:] = 0
    return q, k, v, mask


@pytest.mark.parametrize("requested,env,device,expected", [
    ("auto", None, "cpu", "torch"),
    ("auto", None, "cuda", "triton"),
    ("torch", None, "cuda", "torch"),
    ("eager", None, "cpu", "eager"),
    ("triton", None, "cpu", "triton"),  # the interpreter (TRITON_INTERPRET=1 in tests/conftest.py)
    ("torch", "eager", "cpu", "eager"),
    ("eager", "auto", "cpu", "torch"),
    ("torch", "triton", "cuda", "triton"),
])
def test_backend_resolution_and_the_environment_override(requested, env, device, expected, monkeypatch):
    if env is not None:
        monkeypatch.setenv(KERNEL_BACKEND_ENV, env)
    if device == "cpu" and not torch.cuda.is_available():
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_kernel_backend(requested, device) == expected


def test_triton_on_cpu_without_the_interpreter_is_refused_with_the_way_out(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(XLMRDSError, match="needs CUDA tensors.*TRITON_INTERPRET=1"):
        resolve_kernel_backend("triton", "cpu")


def test_unknown_backends_are_refused_by_name(monkeypatch):
    with pytest.raises(XLMRDSError, match="kernel backend 'cuda' is unknown"):
        resolve_kernel_backend("cuda")
    monkeypatch.setenv(KERNEL_BACKEND_ENV, "fast")
    with pytest.raises(XLMRDSError, match="XLMR_DS_KERNELS='fast' is not a kernel backend"):
        resolve_kernel_backend("auto")


def test_the_deprecated_variable_still_forces_the_backend_with_one_warning_line(monkeypatch, capsys):
    monkeypatch.setattr(dispatch, "_warned_deprecated", set())
    monkeypatch.setenv(DEPRECATED_KERNEL_BACKEND_ENV, "eager")
    assert resolve_kernel_backend("torch", "cpu") == resolve_kernel_backend("auto", "cpu") == "eager"
    assert capsys.readouterr().err == ("xlmr-ds: warning: XLMR_DS_ATTENTION is deprecated (it picks every fused "
                                       "kernel, not only attention); set XLMR_DS_KERNELS=eager instead\n")
    monkeypatch.setenv(KERNEL_BACKEND_ENV, "torch")  # the new name wins
    assert resolve_kernel_backend("auto", "cpu") == "torch"
    monkeypatch.delenv(KERNEL_BACKEND_ENV)
    monkeypatch.setenv(DEPRECATED_KERNEL_BACKEND_ENV, "fast")
    with pytest.raises(XLMRDSError, match="XLMR_DS_ATTENTION='fast' is not a kernel backend"):
        resolve_kernel_backend("auto")


def test_torch_and_eager_backends_agree_and_masked_keys_get_no_weight():
    q, k, v, mask = _inputs()
    torch_out = attention(q, k, v, mask, backend="torch")
    eager_out = attention(q, k, v, mask, backend="eager")
    torch.testing.assert_close(torch_out, eager_out, rtol=0, atol=1e-12)
    # Changing a masked key or value changes nothing.
    k2, v2 = k.clone(), v.clone()
    k2[1, :, 6:], v2[1, :, 6:] = 100.0, -100.0
    torch.testing.assert_close(attention(q, k2, v2, mask, backend="torch"), torch_out, rtol=0, atol=1e-12)


def test_fully_padded_sequence_gives_finite_output_on_every_backend():
    q, k, v, mask = _inputs(dtype=torch.float32)
    mask[0] = 0
    for backend in ("torch", "eager"):
        assert torch.isfinite(attention(q, k, v, mask, backend=backend)).all()


def test_eager_reference_matches_the_textbook_formula():
    q, k, v, mask = _inputs()
    scores = q @ k.transpose(-1, -2) / 4.0
    scores = scores.masked_fill(~mask.bool()[:, None, None, :], float("-inf"))
    expected = torch.softmax(scores, dim=-1) @ v
    actual = eager_attention(q, k, v, key_padding_bias(mask, q.dtype), 0.0, 0.25)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-12)
