// Internal switches of the x86 int8-activation kernels (matmul_int8act.cc), for tests only.
#ifndef LOWBIT_KERNELS_CPU_INT8ACT_HOOKS_H_
#define LOWBIT_KERNELS_CPU_INT8ACT_HOOKS_H_

namespace lowbit::cpu {

// Whether this CPU has AVX-VNNI (VEX vpdpbusd, CPUID.(EAX=7,ECX=1):EAX[4]); read once. False on
// non-x86 builds and when the compiler cannot emit AVX-VNNI.
bool CpuHasAvxVnni();

// While true, the AVX2 and AVX3 int8-activation kernels use the maddubs path even on a CPU with
// AVX-VNNI, so that a machine with AVX-VNNI also tests the path AVX2-only CPUs (Zen 3) take.
// Read at the start of every GemmInt8Act call; set it only while no matmul runs.
void SetInt8ActAvxVnniDisabledForTest(bool disabled);

// Whether the AVX2/AVX3 int8-activation kernels use AVX-VNNI now (CPU has it, not disabled).
bool Int8ActUsesAvxVnni();

}  // namespace lowbit::cpu

#endif  // LOWBIT_KERNELS_CPU_INT8ACT_HOOKS_H_
