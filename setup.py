"""Build libdarknet's C sources and the Cython binding into darknetpy._libdarknet.

CPU GEMM comes from the scipy-openblas32 wheel (a runtime dependency); the
extension links to its shared library with an rpath relative to the package.
"""
import glob
import os

import numpy
import scipy_openblas32
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = sorted(glob.glob(os.path.join("libdarknet", "src", "*.c")))

blas_lib_dir = scipy_openblas32.get_lib_dir()
# darknetpy/ and scipy_openblas32/ are siblings in site-packages. No absolute path: at build time
# blas_lib_dir is a temporary build environment. (darknetpy imports scipy_openblas32 first, which
# loads the library wherever it is, so an in-place build finds it too.)
rpaths = ["$ORIGIN/../scipy_openblas32/lib"]

# Like ggml's GGML_NATIVE: tune the engine's own loops (activations, im2col,
# pooling) for the building CPU. DARKNETPY_NATIVE=0 builds portable code.
native = ["-march=native"] if os.environ.get("DARKNETPY_NATIVE", "1") != "0" else []

extension = Extension(
    "darknetpy._libdarknet",
    sources=["src_ext/_libdarknet.pyx"] + SOURCES,
    include_dirs=["libdarknet/include", "libdarknet/src", "src_ext", scipy_openblas32.get_include_dir(),
                  numpy.get_include()],
    library_dirs=[blas_lib_dir],
    libraries=[scipy_openblas32.get_library()],
    # no-trapping-math and no-math-errno change no result; they let GCC vectorise branchy float loops.
    # fp-contract=off: no fused multiply-adds, so resize_image stays bit-exact with upstream (spec §5.2).
    extra_compile_args=["-O3", "-fno-trapping-math", "-fno-math-errno", "-ffp-contract=off", "-fopenmp", "-std=gnu11",
                        "-Wall", "-Wno-unused-function",
                        "-Wno-unknown-pragmas"] + native,
    extra_link_args=["-fopenmp"] + [f"-Wl,-rpath,{p}" for p in rpaths],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
)

setup(ext_modules=cythonize([extension], include_path=["src_ext"], language_level=3,
                            compiler_directives={"boundscheck": False,
                                                 "wraparound": False}))
