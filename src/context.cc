// Context: PLACEHOLDER serial implementation until the fork-join pool lands (issue 3).
#include "lowbit/context.h"

#include <thread>

#include "lowbit/status.h"

namespace lowbit {

struct Context::Impl {
  int num_threads = 1;
  ParallelForFn host;
};

Context::Context(int num_threads) : impl_(new Impl) { SetNumThreads(num_threads); }
Context::~Context() = default;

int Context::num_threads() const { return impl_->num_threads; }

void Context::SetNumThreads(int num_threads) {
  impl_->num_threads =
      num_threads > 0 ? num_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void Context::SetParallelFor(ParallelForFn fn, int host_num_threads) {
  impl_->host = std::move(fn);
  if (impl_->host) impl_->num_threads = std::max(1, host_num_threads);
}

void Context::ParallelFor(int64_t num_tasks, const RangeFn& body) {
  if (num_tasks <= 0) return;
  if (impl_->host) {
    impl_->host(num_tasks, body);
    return;
  }
  body(0, num_tasks);
}

Context& DefaultContext() {
  static Context* ctx = new Context(0);
  return *ctx;
}

}  // namespace lowbit
