// Internal switches of the int8-activation kernels' run-time dot-product extension
// (matmul_int8act.cc), for tests only.
#ifndef LOWBIT_KERNELS_CPU_INT8ACT_HOOKS_H_
#define LOWBIT_KERNELS_CPU_INT8ACT_HOOKS_H_

namespace lowbit::cpu {

// Whether this CPU has the int8 dot-product extension the AVX2/AVX3 and NEON kernels detect at
// run time: on x86-64 AVX-VNNI (VEX vpdpbusd, CPUID.(EAX=7,ECX=1):EAX[4]); on aarch64 Linux the
// ARMv8.2 dot product (sdot, HWCAP_ASIMDDP). Read once; false elsewhere and when the compiler
// cannot emit it.
bool CpuHasInt8DotExtension();

// While true, those kernels take their path without the extension (maddubs on x86, int16 madd
// on NEON) even on a CPU that has it, so that one machine tests both. Read at the start of every
// GemmInt8Act call; set it only while no matmul runs.
void SetInt8ActDotExtensionDisabledForTest(bool disabled);

// Whether the int8-activation kernels use the extension now (CPU has it, not disabled).
bool Int8ActUsesDotExtension();

}  // namespace lowbit::cpu

#endif  // LOWBIT_KERNELS_CPU_INT8ACT_HOOKS_H_
