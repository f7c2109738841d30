"""The CPU's instructions that decide how int8 and bf16 run: AVX2, AVX-512, VNNI, AVX-512 BF16, AMX."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch

_PROBES = {"avx2": "_is_avx2_supported", "avx512": "_is_avx512_supported", "vnni": "_is_vnni_supported",
           "avx512_bf16": "_is_avx512_bf16_supported", "amx": "_is_amx_tile_supported"}
# /proc/cpuinfo's names, for the instructions that torch's probes (AVX-512 VNNI) do not see: AVX-VNNI
# (Alder Lake and later, Zen 5) does int8 dot products as AVX-512 VNNI does, on 256-bit registers.
_CPUINFO_VNNI = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class CpuInstructions:
    """What this CPU offers: ``vnni`` is true with any int8 dot-product instruction (AVX-512 VNNI,
    AVX-VNNI or AMX), without which int8 products saturate unless the weights use 7 bits."""

    avx2: bool
    avx512: bool
    vnni: bool
    avx512_bf16: bool
    amx: bool

    def describe(self) -> str:
        """The flags as one would quote them beside a benchmark: "AVX2, AVX-512F, VNNI, AVX-512 BF16, no AMX"."""
        names = {"avx2": "AVX2", "avx512": "AVX-512F", "vnni": "VNNI", "avx512_bf16": "AVX-512 BF16", "amx": "AMX"}
        return ", ".join(label if getattr(self, key) else f"no {label}" for key, label in names.items())


@cache
def cpu_instructions() -> CpuInstructions:
    """This CPU's instructions, from torch's cpuinfo probes (and /proc/cpuinfo for AVX-VNNI on Linux)."""
    found = {key: bool(getattr(torch.cpu, probe, lambda: False)()) for key, probe in _PROBES.items()}
    found["vnni"] = found["vnni"] or found["amx"] or any(flag in _cpuinfo_flags() for flag in _CPUINFO_VNNI)
    return CpuInstructions(**found)


def _cpuinfo_flags() -> set[str]:
    """The flags of /proc/cpuinfo's first processor (empty where there is no such file)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())
