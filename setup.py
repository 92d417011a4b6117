"""Build libdarknet's C sources and the Cython binding into darknetpy._libdarknet.

CPU GEMM comes from the scipy-openblas32 wheel (a runtime dependency); the
extension links to its shared library with an rpath relative to the package.

The CPU kernels (libdarknet/src/cpu/) are compiled once per instruction-set
level and the level is picked at run time, so one build runs on any x86-64 CPU
and uses AVX2 / AVX-512 where present. DARKNETPY_NATIVE=1 (opt-in) tunes
everything for the building machine instead (-march=native).

When nvcc is found (or DARKNETPY_CUDA=1; DARKNETPY_CUDA=0 turns it off), the CUDA
backend (libdarknet/src/cuda/) is built into the same extension: its .cu files with nvcc
for the GPU architectures in CUDA_ARCHS (DARKNETPY_CUDA_ARCHS="90" narrows them), the
rest with the C compiler. The CUDA runtime is linked statically (it loads the driver
itself when first used); cuBLAS and cuDNN are opened at run time from the nvidia-cublas
and nvidia-cudnn-cu13 wheels, so the extension imports on machines without CUDA.
"""
import glob
import os
import platform
import shutil
import subprocess

import numpy
import scipy_openblas32
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ENGINE = sorted(glob.glob(os.path.join("libdarknet", "src", "*.c")))
CPU_KERNELS = sorted(f for f in glob.glob(os.path.join("libdarknet", "src", "cpu", "*.c"))
                     if not f.endswith("dispatch.c"))

# instruction-set level -> compiler flags for the kernels (x86-64 only; other
# machines build the baseline level alone)
ISA_LEVELS = {"base": [], "avx2": ["-march=x86-64-v3"], "avx512": ["-march=x86-64-v4"]}
NATIVE = os.environ.get("DARKNETPY_NATIVE", "0") == "1"
X86 = platform.machine().lower() in ("x86_64", "amd64")

blas_lib_dir = scipy_openblas32.get_lib_dir()
# darknetpy/ and scipy_openblas32/ are siblings in site-packages. No absolute path: at build time
# blas_lib_dir is a temporary build environment. (darknetpy imports scipy_openblas32 first, which
# loads the library wherever it is, so an in-place build finds it too.)
rpaths = ["$ORIGIN/../scipy_openblas32/lib"]

INCLUDE = ["libdarknet/include", "libdarknet/src", "src_ext", scipy_openblas32.get_include_dir(), numpy.get_include()]
# no-trapping-math and no-math-errno change no result; they let GCC vectorise branchy float loops.
# fp-contract=off: no fused multiply-adds, so resize_image stays bit-exact with upstream (spec §5.2)
# and every instruction-set level computes the same values.
CFLAGS = ["-O3", "-fno-trapping-math", "-fno-math-errno", "-ffp-contract=off", "-fopenmp", "-std=gnu11", "-Wall",
          "-Wno-unused-function", "-Wno-unknown-pragmas"] + (["-march=native"] if NATIVE else [])


# sm_XX with kernels compiled for it (where this nvcc knows it); PTX of the newest runs on later GPUs
CUDA_ARCHS = ("80", "86", "89", "90", "100", "120")
CUDA_SOURCES = sorted(glob.glob(os.path.join("libdarknet", "src", "cuda", "*.c")))
CUDA_KERNELS = sorted(glob.glob(os.path.join("libdarknet", "src", "cuda", "*.cu")))


def find_nvcc():
    """nvcc when the CUDA build is on (DARKNETPY_CUDA=1 requires it), else None."""
    want = os.environ.get("DARKNETPY_CUDA", "")
    if want == "0":
        return None
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    nvcc = shutil.which("nvcc") or (home and shutil.which("nvcc", path=os.path.join(home, "bin")))
    if want == "1" and not nvcc:
        raise RuntimeError("DARKNETPY_CUDA=1 but nvcc was not found on PATH or in $CUDA_HOME/bin")
    return nvcc


def cuda_home(nvcc):
    """The toolkit folder: $CUDA_HOME, the folder above nvcc's bin/, or /usr/local/cuda."""
    env = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    for home in (env, os.path.dirname(os.path.dirname(os.path.realpath(nvcc))), "/usr/local/cuda"):
        if home and os.path.exists(os.path.join(home, "include", "cuda_runtime_api.h")):
            return home
    raise RuntimeError(f"the CUDA headers of {nvcc} were not found: set CUDA_HOME to the toolkit's folder")


def cudart_static(home):
    """The static CUDA runtime: nvcc's own, else the nvidia-cuda-runtime wheel's."""
    candidates = [os.path.join(home, d, "libcudart_static.a") for d in ("lib64", "lib", "targets/x86_64-linux/lib")]
    try:
        import nvidia
        candidates += [os.path.join(d, "cu13", "lib", "libcudart_static.a") for d in nvidia.__path__]
    except ImportError:
        pass
    for path in candidates:
        if os.path.exists(path):
            return path
    raise RuntimeError(f"libcudart_static.a was not found (looked in {candidates}); pip install nvidia-cuda-runtime")


def gencode_flags(nvcc):
    known = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True, check=True).stdout
    wanted = os.environ.get("DARKNETPY_CUDA_ARCHS", " ".join(CUDA_ARCHS)).replace(",", " ").split()
    archs = [a for a in wanted if f"compute_{a}" in known]
    if not archs:
        raise RuntimeError(f"nvcc supports none of the GPU architectures {wanted}")
    flags = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    return flags + [f"-gencode=arch=compute_{archs[-1]},code=compute_{archs[-1]}"]


class BuildWithKernels(build_ext):
    """Compile cpu/*.c once per level (DN_ISA names the symbols) and link them all in."""

    def build_extension(self, ext):
        levels = {"base": []} if NATIVE or not X86 else ISA_LEVELS
        objects = []
        for isa, flags in levels.items():
            objects += self.compiler.compile(
                CPU_KERNELS, output_dir=os.path.join(self.build_temp, isa), include_dirs=INCLUDE,
                macros=[("DN_ISA", isa)], extra_postargs=CFLAGS + flags)
        nvcc = find_nvcc()
        if nvcc:
            objects += self.build_cuda(nvcc, ext)
        ext.extra_objects = objects
        # the objects built here are link inputs: a newer kernel source must relink the extension
        ext.depends = ext.depends + CPU_KERNELS + glob.glob(os.path.join("libdarknet", "src", "**", "*.[ch]*"),
                                                            recursive=True)
        if not X86 or NATIVE:
            ext.define_macros = ext.define_macros + [("DN_CPU_BASE_ONLY", "1")]
        super().build_extension(ext)

    def build_cuda(self, nvcc, ext):
        """Objects of the CUDA backend; links the static runtime into ext."""
        home = cuda_home(nvcc)
        include = INCLUDE + [os.path.join(home, "include")]
        out = os.path.join(self.build_temp, "cuda")
        os.makedirs(out, exist_ok=True)
        newest = max(os.path.getmtime(f) for f in glob.glob(os.path.join("libdarknet", "src", "cuda", "*")) + [
            os.path.join("libdarknet", "src", "dn.h")])
        kernels = []
        for source in CUDA_KERNELS:
            obj = os.path.join(out, os.path.basename(source)[:-3] + ".o")
            kernels.append(obj)
            if os.path.exists(obj) and os.path.getmtime(obj) >= newest:
                continue
            cmd = [nvcc, "-c", source, "-o", obj, "-O3", "-std=c++17", "-Xcompiler", "-fPIC"] + \
                [f"-I{d}" for d in INCLUDE] + gencode_flags(nvcc)
            print(" ".join(cmd))
            subprocess.run(cmd, check=True)
        objects = self.compiler.compile(CUDA_SOURCES, output_dir=out, include_dirs=include,
                                        macros=[("DN_WITH_CUDA", "1")], extra_postargs=CFLAGS)
        ext.define_macros = ext.define_macros + [("DN_WITH_CUDA", "1")]
        ext.depends = ext.depends + CUDA_SOURCES + CUDA_KERNELS  # relink when they change
        ext.extra_link_args = ext.extra_link_args + [cudart_static(home), "-lstdc++", "-ldl", "-lrt", "-lpthread",
                                                     "-Wl,-rpath,$ORIGIN/../nvidia/cu13/lib:$ORIGIN/../nvidia/cudnn/lib:"
                                                     "$ORIGIN/../nvidia/nccl/lib"]
        return objects + kernels


extension = Extension(
    "darknetpy._libdarknet",
    sources=["src_ext/_libdarknet.pyx"] + ENGINE + [os.path.join("libdarknet", "src", "cpu", "dispatch.c")],
    include_dirs=INCLUDE,
    library_dirs=[blas_lib_dir],
    libraries=[scipy_openblas32.get_library()],
    extra_compile_args=CFLAGS,
    extra_link_args=["-fopenmp"] + [f"-Wl,-rpath,{p}" for p in rpaths],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
)

setup(ext_modules=cythonize([extension], include_path=["src_ext"], language_level=3,
                            compiler_directives={"boundscheck": False, "wraparound": False}),
      cmdclass={"build_ext": BuildWithKernels})
