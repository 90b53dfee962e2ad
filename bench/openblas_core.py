"""OpenBLAS's kernel choice, for the benchmark drivers that run OpenBLAS-backed programs (ours and libtorch).

Debian's OpenBLAS 0.3.21 is built for every x86-64 core type and picks one from CPUID at load time. A CPU model it
does not know (on 7 Dec 2026 our VM reported an Emerald Rapids Xeon, family 6 model 207) falls back to "Prescott",
its SSE3 kernels: SGEMM ran about 2.4x slower there, and tiny_lm and libtorch with it. OPENBLAS_CORETYPE overrides
the choice; "auto" sets it, for both sides of a comparison, to the best core the CPU's flags allow when OpenBLAS
chose a weaker one, so that each side runs at its best setting.
"""
import os
import subprocess

# OpenBLAS's core names by FMA width (lower case: single-target builds report "SKYLAKEX", others "SkylakeX").
WIDTH = {**{n: 512 for n in ("skylakex", "cooperlake", "sapphirerapids")},
         **{n: 256 for n in ("haswell", "zen", "piledriver", "steamroller", "excavator")},
         **{n: 128 for n in ("prescott", "core2", "penryn", "dunnington", "nehalem", "sandybridge", "atom", "nano",
                             "barcelona", "opteron", "opteron_sse3", "bobcat", "bulldozer", "athlon", "katmai",
                             "coppermine", "northwood", "banias")}}


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
    width = WIDTH.get((chosen or "").lower(), 0)  # 0: unknown, nothing is decided on a guess
    want = None
    if width and "avx512f" in flags and width < 512:
        want = "SkylakeX"
    elif width and "avx2" in flags and "fma" in flags and width < 256:
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
