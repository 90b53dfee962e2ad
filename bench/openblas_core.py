"""OpenBLAS's kernel choice, for the benchmark drivers that run OpenBLAS-backed programs (ours and libtorch).

Debian's OpenBLAS 0.3.21 is built for every x86-64 core type and picks one from CPUID at load time. A CPU model it
does not know (on 7 Dec 2026 our VM reported an Emerald Rapids Xeon, family 6 model 207) falls back to "Prescott",
its SSE3 kernels: SGEMM ran about 2.4x slower there, and tiny_lm and libtorch with it. OPENBLAS_CORETYPE overrides
the choice; "auto" sets it, for both sides of a comparison, to the best core the CPU's flags allow when OpenBLAS
chose a weaker one, so that each side runs at its best setting.
"""
import os
import subprocess

# The core types whose SGEMM uses 512-bit FMAs, and those with 256-bit FMAs (OpenBLAS's names).
AVX512_CORES = {"SkylakeX", "Cooperlake", "SapphireRapids"}
AVX2_CORES = AVX512_CORES | {"Haswell", "Zen"}


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def openblas_core(env=None):
    """The core type OpenBLAS chooses in a process with environment env (None: this one), or None."""
    code = ("import ctypes,ctypes.util\n"
            "n=ctypes.util.find_library('openblas')\n"
            "l=ctypes.CDLL(n) if n else None\n"
            "f=getattr(l,'openblas_get_corename',None) if l else None\n"
            "f and setattr(f,'restype',ctypes.c_char_p)\n"
            "print(f().decode() if f else '')\n")
    p = subprocess.run(["python3", "-c", code], capture_output=True, text=True, env=env)
    name = p.stdout.strip()
    return name or None


def coretype_env(choice):
    """Extra environment for the measured programs: {} or {"OPENBLAS_CORETYPE": name}, and a line saying why.

    choice: "auto" (the rule above), "none" (OpenBLAS's own choice), or a core type name to force."""
    if choice == "none":
        return {}, f"OpenBLAS core: {openblas_core()} (its own choice)"
    if choice != "auto":
        return {"OPENBLAS_CORETYPE": choice}, f"OpenBLAS core: {choice} (forced)"
    if "OPENBLAS_CORETYPE" in os.environ:
        return {}, f"OpenBLAS core: {openblas_core()} (OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} given)"
    chosen = openblas_core()
    flags = cpu_flags()
    want = None
    if "avx512f" in flags and chosen not in AVX512_CORES:
        want = "SkylakeX"
    elif "avx2" in flags and "fma" in flags and chosen not in AVX2_CORES:
        want = "Haswell"
    if want is None:
        return {}, f"OpenBLAS core: {chosen} (its own choice, matches the CPU)"
    return ({"OPENBLAS_CORETYPE": want},
            f"OpenBLAS core: {want} for both sides (OpenBLAS chose {chosen} on a CPU with "
            f"{'AVX-512F' if want == 'SkylakeX' else 'AVX2 + FMA'}; OPENBLAS_CORETYPE={want})")


if __name__ == "__main__":
    # Prints the OPENBLAS_CORETYPE that "auto" would set (nothing when OpenBLAS's own choice fits the CPU):
    # setup.sh exports it for the flagship.
    extra, _ = coretype_env("auto")
    print(extra.get("OPENBLAS_CORETYPE", ""))
