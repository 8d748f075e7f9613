# CMake toolchain file: cross-compile lowbit for 64-bit ARM Linux (aarch64) on a Debian x86-64
# host with Debian's cross compiler and multiarch arm64 libraries, and run the binaries under
# qemu-user. Used by scripts/cross-arm64.sh; by hand:
#   PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig \
#   cmake -S . -B build/arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
# Needs: g++-aarch64-linux-gnu, qemu-user, libhwy-dev:arm64, libgtest-dev:arm64 (after
# `dpkg --add-architecture arm64`); Eigen and nlohmann-json are header-only, the host packages serve.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Debian multiarch: arm64 libraries and their CMake packages live in /usr/lib/aarch64-linux-gnu,
# the cross libc in /usr/aarch64-linux-gnu.
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu)
# Programs (pkg-config, qemu) are the host's. Libraries, headers and packages are searched in the
# root paths first and then in the host's /usr: multiarch keeps the arm64 libraries apart by
# directory (CMAKE_LIBRARY_ARCHITECTURE), and the header-only packages (Eigen, nlohmann-json) are
# architecture-independent.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# pkg-config must see only arm64 .pc files (libhwy), never the host's x86-64 ones.
if(NOT DEFINED ENV{PKG_CONFIG_LIBDIR})
  set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
endif()

# ctest and gtest_discover_tests run the test binaries under qemu. QEMU_CPU (environment) picks
# the emulated CPU: e.g. "max" (SVE2), "a64fx" (SVE, no SVE2), "max,sve=off" (NEON only).
# No "-L /usr/aarch64-linux-gnu": the binaries then get the cross package's ld.so (glibc
# 2.36-8cross1) but the multiarch libc.so.6 of libc6:arm64 (2.36-9+deb12u*, pulled in by
# libhwy1:arm64), and that mix corrupts glibc's thread-stack cache: the second pthread_create
# spins forever (seen in matmul_test's MatmulThreads). Without -L, qemu uses the host root, where
# /lib/ld-linux-aarch64.so.1 and every arm64 library come from the same multiarch glibc.
set(CMAKE_CROSSCOMPILING_EMULATOR "qemu-aarch64")
