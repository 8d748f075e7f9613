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
// Thread safety: a Context may be used by one operation at a time (ops called concurrently from
// several threads need one Context each). Creating and destroying is not thread-safe per object.
class Context {
 public:
  // Runs body(begin, end) over a partition of [0, num_tasks) and returns when all ran. The
  // host's implementation may call body from any thread, any number of times, with any
  // contiguous partition.
  using RangeFn = std::function<void(int64_t begin, int64_t end)>;
  using ParallelForFn = std::function<void(int64_t num_tasks, const RangeFn& body)>;

  // num_threads <= 0: std::thread::hardware_concurrency(). 1: run everything on the caller.
  explicit Context(int num_threads = 0);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int num_threads() const;
  // Resizes the built-in pool (joins the old workers); <= 0 means hardware concurrency.
  void SetNumThreads(int num_threads);
  // Installs the host engine's parallel-for (nullptr restores the built-in pool).
  void SetParallelFor(ParallelForFn fn, int host_num_threads);

  // Runs body over [0, num_tasks) in parallel; returns when every task ran. Exceptions thrown by
  // body are rethrown here (the first one) after all tasks finished.
  void ParallelFor(int64_t num_tasks, const RangeFn& body);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A process-wide default context (hardware concurrency), created on first use. Used by ops that
// receive no Context. Not for concurrent use from several threads (see above).
Context& DefaultContext();

}  // namespace lowbit

#endif  // LOWBIT_CONTEXT_H_
