// bench/mem_read.cc — Highway multi-stream read kernel (per-target, dynamic dispatch).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "bench/mem_read.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include "bench/mem_read.h"

HWY_BEFORE_NAMESPACE();
namespace lowbit {
namespace bench {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Eight streams, two vectors each per step: 16 independent loads in flight per step and one
// accumulator per stream, so neither the load queue nor an add chain is the limit.
uint64_t ReadStreamsImpl(const uint8_t* data, size_t bytes) {
  static_assert(kMemReadStreams == 8, "the loop below is written for eight streams");
  const hn::ScalableTag<uint64_t> d;
  const size_t lanes = hn::Lanes(d);
  const size_t stream_lanes = bytes / sizeof(uint64_t) / kMemReadStreams;
  const uint64_t* p = reinterpret_cast<const uint64_t*>(data);
  const uint64_t* s0 = p;
  const uint64_t* s1 = s0 + stream_lanes;
  const uint64_t* s2 = s1 + stream_lanes;
  const uint64_t* s3 = s2 + stream_lanes;
  const uint64_t* s4 = s3 + stream_lanes;
  const uint64_t* s5 = s4 + stream_lanes;
  const uint64_t* s6 = s5 + stream_lanes;
  const uint64_t* s7 = s6 + stream_lanes;
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  auto a4 = hn::Zero(d), a5 = hn::Zero(d), a6 = hn::Zero(d), a7 = hn::Zero(d);
  for (size_t i = 0; i + 2 * lanes <= stream_lanes; i += 2 * lanes) {
    a0 = hn::Add(a0, hn::Xor(hn::Load(d, s0 + i), hn::Load(d, s0 + i + lanes)));
    a1 = hn::Add(a1, hn::Xor(hn::Load(d, s1 + i), hn::Load(d, s1 + i + lanes)));
    a2 = hn::Add(a2, hn::Xor(hn::Load(d, s2 + i), hn::Load(d, s2 + i + lanes)));
    a3 = hn::Add(a3, hn::Xor(hn::Load(d, s3 + i), hn::Load(d, s3 + i + lanes)));
    a4 = hn::Add(a4, hn::Xor(hn::Load(d, s4 + i), hn::Load(d, s4 + i + lanes)));
    a5 = hn::Add(a5, hn::Xor(hn::Load(d, s5 + i), hn::Load(d, s5 + i + lanes)));
    a6 = hn::Add(a6, hn::Xor(hn::Load(d, s6 + i), hn::Load(d, s6 + i + lanes)));
    a7 = hn::Add(a7, hn::Xor(hn::Load(d, s7 + i), hn::Load(d, s7 + i + lanes)));
  }
  const auto sum = hn::Add(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)),
                           hn::Add(hn::Add(a4, a5), hn::Add(a6, a7)));
  return hn::GetLane(hn::SumOfLanes(d, sum));
}

}  // namespace HWY_NAMESPACE
}  // namespace bench
}  // namespace lowbit
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lowbit {
namespace bench {
HWY_EXPORT(ReadStreamsImpl);
uint64_t ReadStreams(const uint8_t* data, size_t bytes) {
  return HWY_DYNAMIC_DISPATCH(ReadStreamsImpl)(data, bytes);
}
}  // namespace bench
}  // namespace lowbit
#endif  // HWY_ONCE
