// lowbit/context.h — execution context: thread pool or host parallel-for, and scratch memory.
#ifndef LOWBIT_CONTEXT_H_
#define LOWBIT_CONTEXT_H_

#include <cstdint>
#include <functional>
#include <memory>

namespace lowbit {

// A Context decides where lowbit's kernels run. By default it owns a small fork-join pool of
// `num_threads` (the calling thread included: num_threads - 1 workers); a host engine that has
// its own pool installs a ParallelForFn instead and lowbit then never creates a thread.
// Kernels split work into independent tasks and never spawn threads themselves; results do not
// depend on the thread count.
//
// The built-in pool's workers are started lazily by the first ParallelFor that needs them (so a
// Context that only ever uses a host parallel-for never creates a thread). Between calls they
// spin for a few tens of microseconds (back-to-back ops dispatch in about a microsecond) and
// then sleep on a condition variable (idle workers cost no CPU).
//
// Thread safety: a Context may be used by one operation at a time (ops called concurrently from
// several threads need one Context each). A ParallelFor that finds the Context already busy
// (a nested call from inside a body, or a concurrent call from another thread) runs its tasks
// serially on the calling thread instead of deadlocking. Creating, destroying, SetNumThreads and
// SetParallelFor must not race with ParallelFor on the same object.
class Context {
 public:
  // Runs body(begin, end) over a partition of [0, num_tasks) and returns when all ran. The
  // host's implementation may call body from any thread, any number of times, with any
  // contiguous partition.
  using RangeFn = std::function<void(int64_t begin, int64_t end)>;
  using ParallelForFn = std::function<void(int64_t num_tasks, const RangeFn& body)>;

  // Largest thread count accepted by the constructor, SetNumThreads and SetParallelFor (a
  // guard against garbage values; far above any machine lowbit targets).
  static constexpr int kMaxThreads = 1024;

  // num_threads <= 0: std::thread::hardware_concurrency(). 1: run everything on the caller.
  // Throws Error(kInvalidArgument) when num_threads > kMaxThreads.
  explicit Context(int num_threads = 0);
  // Joins the workers (they must be idle: no ParallelFor in flight).
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Threads that run tasks: the host's count while a host parallel-for is installed, else the
  // built-in pool's (calling thread included).
  int num_threads() const;
  // Resizes the built-in pool (joins the old workers; new ones start lazily); <= 0 means
  // hardware concurrency. Throws Error(kInvalidArgument) when num_threads > kMaxThreads.
  // While a host parallel-for is installed this only sets the size used after it is removed.
  void SetNumThreads(int num_threads);
  // Installs the host engine's parallel-for and joins the built-in workers (nullptr restores
  // the built-in pool). host_num_threads (1..kMaxThreads, checked when fn is set) is what
  // num_threads() reports, so kernels split work into enough tasks for the host's pool.
  void SetParallelFor(ParallelForFn fn, int host_num_threads);

  // Runs body over [0, num_tasks) in parallel, each task exactly once, in contiguous ranges;
  // returns when every task ran. If body throws, tasks not yet started are skipped and the
  // first exception is rethrown here once no body call is running any more. num_tasks == 0 is a
  // no-op; num_tasks < 0 or an empty body throws Error(kInvalidArgument). A single task or one
  // thread (built-in pool, or a host installed with host_num_threads == 1) runs
  // body(0, num_tasks) on the calling thread without waking any pool: the host's parallel-for is
  // not called then.
  // Callers (the CPU backend) also skip ParallelFor entirely for work too small to share.
  void ParallelFor(int64_t num_tasks, const RangeFn& body);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A process-wide default context (hardware concurrency), created on first use and never
// destroyed. Used by ops that receive no Context. Not for concurrent use from several threads
// (see above; a concurrent call degrades to serial execution).
Context& DefaultContext();

}  // namespace lowbit

#endif  // LOWBIT_CONTEXT_H_
