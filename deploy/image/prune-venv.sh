#!/bin/sh
# Shrink a virtual environment for an image, after `pip check`: what nothing imports at run time
# goes. The packages' own test suites and test binaries, C and C++ headers and static libraries,
# Cython sources, Arrow Flight (the platform does not use it; nothing else links it), and the installers
# themselves (pip, setuptools: an image is never pip-installed into). Shared libraries are left
# as they are: strip(1) breaks the ones auditwheel patched (numpy's OpenBLAS: "ELF load command
# address/offset not page-aligned"). Usage: prune-venv.sh VENV
set -eu
site="$(echo "$1"/lib/python3*/site-packages)"
cd "$site"
rm -rf pandas/tests pyarrow/tests pyarrow/include pyarrow/src torch/include torch/test torch/share/cmake \
       sympy/testing/tests
find . -depth -type d -name tests -path './numpy/*' -exec rm -rf {} +
find . -name '*.a' -delete
find pyarrow -maxdepth 1 \( -name '*flight*' -o -name '_pyarrow_cpp_tests*' \
     -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' \) -exec rm -rf {} +
if [ -d torch/bin ]; then
  find torch/bin -mindepth 1 ! -name torch_shm_manager -exec rm -rf {} +
fi
rm -rf pip pip-* setuptools setuptools-* pkg_resources _distutils_hack distutils-precedence.pth
rm -f "$1"/bin/pip "$1"/bin/pip3*
