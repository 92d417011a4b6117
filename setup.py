"""Build libdarknet's C sources and the Cython binding into darknetpy._libdarknet.

CPU GEMM comes from the scipy-openblas32 wheel (a runtime dependency); the
extension links to its shared library with an rpath relative to the package.

The CPU kernels (libdarknet/src/cpu/) are compiled once per instruction-set
level and the level is picked at run time, so one build runs on any x86-64 CPU
and uses AVX2 / AVX-512 where present. DARKNETPY_NATIVE=1 (opt-in) tunes
everything for the building machine instead (-march=native).
"""
import glob
import os
import platform

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


class BuildWithKernels(build_ext):
    """Compile cpu/*.c once per level (DN_ISA names the symbols) and link them all in."""

    def build_extension(self, ext):
        levels = {"base": []} if NATIVE or not X86 else ISA_LEVELS
        objects = []
        for isa, flags in levels.items():
            objects += self.compiler.compile(
                CPU_KERNELS, output_dir=os.path.join(self.build_temp, isa), include_dirs=INCLUDE,
                macros=[("DN_ISA", isa)], extra_postargs=CFLAGS + flags)
        ext.extra_objects = objects
        if not X86 or NATIVE:
            ext.define_macros = ext.define_macros + [("DN_CPU_BASE_ONLY", "1")]
        super().build_extension(ext)


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
