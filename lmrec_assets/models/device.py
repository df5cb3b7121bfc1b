"""Where the PyTorch models run: `LMREC_DEVICE` = auto (default: CUDA when torch sees a GPU, else CPU) | cpu | cuda.

The device is how a model is run, not what it is: it is never a Params field (so it never enters a model version:
the same model trained on CPU or GPU is the same version), artifacts hold CPU tensors (safetensors files carry no
device), and the model card records where a model was trained. Every torch model resolves the device once, in its
constructor, moves its modules there, creates its tensors there and hands scores back as CPU numpy arrays.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | None = None) -> torch.device:
    """`name`, else `LMREC_DEVICE`, else auto. Asking for CUDA on a machine without it is an error, not a silent CPU
    run: a job sized for a GPU would otherwise take hours and look hung."""
    name = (name or os.environ.get("LMREC_DEVICE") or "auto").strip().lower()
    if name not in DEVICES:
        raise ValueError(f"LMREC_DEVICE={name!r} is not a device; choose one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"LMREC_DEVICE=cuda but torch sees no CUDA device (torch {torch.__version__}, built for CUDA "
            f"{torch.version.cuda or 'none'}); set LMREC_DEVICE=cpu or auto, or install a CUDA build of torch"
        )
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def cpu_has_vnni() -> bool:
    """Whether this CPU has AVX512-VNNI or AVX-VNNI (int8 products accumulated in int32; Linux /proc/cpuinfo, False
    where it cannot tell)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def bf16_native(device: torch.device) -> bool:
    """Whether `device` computes in bf16 natively: a CPU with AVX512-BF16 / AMX, a CUDA GPU from Ampere on."""
    return torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_bf16()


def autocast(device: torch.device, bf16: bool) -> torch.autocast:
    """Mixed precision for the LM passes (weights stay fp32), switched by the model's `bf16` param, and only where
    the device computes bf16 natively (`bf16_native`); elsewhere fp32.

    Why the check: on a CPU without AVX512-BF16 (an AVX2-only EPYC), bf16 autocast is emulated. Measured there,
    generative_p5's QUALITY training made 8 optimizer steps in 738 s, where the same code on a CPU with
    AVX512-BF16 made 188 in 833 s. CUDA GPUs before Ampere run fp32 too: fp16 would need a gradient scaler in every
    training loop. Like the device, this is how a model runs, not what it is: it does not change model versions."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and bf16_native(device))
