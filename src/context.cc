// Context: the built-in fork-join pool (spin-then-sleep workers, chunked dynamic scheduling) and
// the host parallel-for hook.
#include "lowbit/context.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "lowbit/status.h"

namespace lowbit {
namespace {

// Chunks per thread: more than one so that a thread the OS deschedules (shared cores) delays the
// op by a small chunk, not by a whole 1/num_threads share; few enough that each chunk stays a
// long contiguous stream of weight rows (what DRAM prefetchers need).
constexpr int64_t kChunksPerThread = 4;
static_assert(Context::kMaxThreads * kChunksPerThread < (1 << 16), "chunk count fits 16 bits");

// How long an idle worker (or the caller waiting for the last chunk) spins before it sleeps on
// the condition variable. Back-to-back ops (the layers of one decode step) arrive within a few
// microseconds and are picked up without a futex wake (~5-50 us); an idle pool stops burning
// CPU after this long.
constexpr std::chrono::microseconds kSpinTime{50};
// Spin iterations between two clock reads (a clock read costs ~20 ns, a pause ~10-40 ns).
constexpr int kSpinBatch = 64;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Spins until pred() holds or kSpinTime elapsed; returns pred()'s last value.
template <class Pred>
bool SpinUntil(const Pred& pred) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  while (true) {
    for (int i = 0; i < kSpinBatch; ++i) {
      if (pred()) return true;
      CpuRelax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return pred();
  }
}

// The job word packs everything a worker needs to claim a chunk atomically, so that a worker
// that wakes late can never claim a chunk of a newer job while believing it belongs to an older
// one: bits 63..32 epoch (job number), 31..16 next chunk to claim, 15..0 number of chunks.
constexpr uint64_t JobWord(uint32_t epoch, uint32_t next, uint32_t count) {
  return (uint64_t{epoch} << 32) | (uint64_t{next} << 16) | count;
}
constexpr uint32_t Epoch(uint64_t w) { return static_cast<uint32_t>(w >> 32); }
constexpr uint32_t Next(uint64_t w) { return static_cast<uint32_t>(w >> 16) & 0xFFFFu; }
constexpr uint32_t Count(uint64_t w) { return static_cast<uint32_t>(w) & 0xFFFFu; }

}  // namespace

// num_workers persistent threads plus the calling thread. One job at a time (Context::Impl
// guarantees it with its busy flag).
class Pool {
 public:
  // Starts up to num_workers threads; if the OS refuses a thread, keeps those it got (the pool
  // is then smaller, never broken).
  explicit Pool(int num_workers) {
    workers_.reserve(static_cast<size_t>(num_workers));
    for (int i = 0; i < num_workers; ++i) {
      try {
        workers_.emplace_back([this] { WorkerLoop(); });
      } catch (const std::system_error&) {
        break;
      }
    }
  }

  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_.store(true, std::memory_order_seq_cst);
    }
    work_cv_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs body over [0, num_tasks) on the workers and the caller; returns when every chunk
  // completed; rethrows the first exception.
  void Run(int64_t num_tasks, const Context::RangeFn& body) {
    const uint32_t count = static_cast<uint32_t>(
        std::min<int64_t>(num_tasks, int64_t{num_threads()} * kChunksPerThread));
    // Publish the job. Everything written here happens-before a worker's successful claim
    // (release store / acquire CAS on job_).
    body_ = &body;
    num_tasks_ = num_tasks;
    error_ = nullptr;
    failed_.store(false, std::memory_order_relaxed);
    done_chunks_.store(0, std::memory_order_relaxed);
    const uint32_t epoch = ++epoch_;
    job_.store(JobWord(epoch, 0, count), std::memory_order_seq_cst);
    // Dekker pair with WaitForJob: either a sleeping worker is counted here, or it sees the new
    // epoch before it sleeps.
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> lock(mu_); }
      work_cv_.notify_all();
    }

    RunChunks(epoch, /*is_caller=*/true);

    const auto all_done = [&] {
      return done_chunks_.load(std::memory_order_acquire) == count;
    };
    if (!SpinUntil(all_done)) {
      std::unique_lock<std::mutex> lock(mu_);
      done_cv_.wait(lock, all_done);
    }
    if (error_) {
      std::exception_ptr error = error_;
      error_ = nullptr;
      std::rethrow_exception(error);
    }
  }

 private:
  void WorkerLoop() {
    uint32_t seen = 0;
    while (true) {
      const auto has_news = [&] {
        return stop_.load(std::memory_order_seq_cst) ||
               Epoch(job_.load(std::memory_order_seq_cst)) != seen;
      };
      if (!SpinUntil(has_news)) {
        std::unique_lock<std::mutex> lock(mu_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        work_cv_.wait(lock, has_news);
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      }
      if (stop_.load(std::memory_order_acquire)) return;
      seen = Epoch(job_.load(std::memory_order_acquire));
      RunChunks(seen, /*is_caller=*/false);
    }
  }

  // Claims chunks of job `epoch` until none is left (or the job is already over) and runs them.
  void RunChunks(uint32_t epoch, bool is_caller) {
    uint64_t word = job_.load(std::memory_order_acquire);
    while (true) {
      if (Epoch(word) != epoch || Next(word) >= Count(word)) return;
      if (!job_.compare_exchange_weak(word, word + JobWord(0, 1, 0), std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        continue;  // `word` was reloaded
      }
      // The chunk is ours: the caller cannot return (and overwrite the job fields) before it
      // is counted done below.
      const uint32_t chunk = Next(word), count = Count(word);
      if (!failed_.load(std::memory_order_relaxed)) {
        const int64_t base = num_tasks_ / count, extra = num_tasks_ % count;
        const int64_t begin = chunk * base + std::min<int64_t>(chunk, extra);
        const int64_t end = begin + base + (chunk < extra ? 1 : 0);
        try {
          (*body_)(begin, end);
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mu_);
          if (!error_) error_ = std::current_exception();
          failed_.store(true, std::memory_order_relaxed);
        }
      }
      if (done_chunks_.fetch_add(1, std::memory_order_acq_rel) + 1 == count && !is_caller) {
        { std::lock_guard<std::mutex> lock(mu_); }
        done_cv_.notify_one();
      }
      word = job_.load(std::memory_order_acquire);
    }
  }

  std::vector<std::thread> workers_;
  uint32_t epoch_ = 0;  // caller only
  // Job description: written by the caller before job_ is published, read by chunk owners.
  const Context::RangeFn* body_ = nullptr;
  int64_t num_tasks_ = 0;
  std::exception_ptr error_;  // guarded by error_mu_ while a job runs
  std::mutex error_mu_;
  std::atomic<bool> failed_{false};
  // Separate cache lines: job_ is hammered by claims, done_chunks_ by completions.
  alignas(64) std::atomic<uint64_t> job_{0};
  alignas(64) std::atomic<uint32_t> done_chunks_{0};
  alignas(64) std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;  // guards sleeping (both condition variables)
  std::condition_variable work_cv_, done_cv_;
};

struct Context::Impl {
  int pool_threads = 1;
  std::unique_ptr<Pool> pool;  // started lazily with pool_threads - 1 workers
  ParallelForFn host;
  int host_threads = 1;
  std::atomic<bool> busy{false};  // a built-in ParallelFor is running
};

namespace {
int CheckedThreadCount(int num_threads, const char* what) {
  Require(num_threads <= Context::kMaxThreads, Status::kInvalidArgument,
          std::string(what) + ": num_threads " + std::to_string(num_threads) + " exceeds " +
              std::to_string(Context::kMaxThreads));
  if (num_threads > 0) return num_threads;
  return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u,
                                     static_cast<unsigned>(Context::kMaxThreads)));
}
}  // namespace

Context::Context(int num_threads) : impl_(new Impl) {
  impl_->pool_threads = CheckedThreadCount(num_threads, "Context");
}
Context::~Context() = default;

int Context::num_threads() const {
  return impl_->host ? impl_->host_threads : impl_->pool_threads;
}

void Context::SetNumThreads(int num_threads) {
  const int n = CheckedThreadCount(num_threads, "Context::SetNumThreads");
  impl_->pool.reset();
  impl_->pool_threads = n;
}

void Context::SetParallelFor(ParallelForFn fn, int host_num_threads) {
  if (fn) {
    Require(host_num_threads >= 1 && host_num_threads <= kMaxThreads, Status::kInvalidArgument,
            "Context::SetParallelFor: host_num_threads " + std::to_string(host_num_threads) +
                " outside [1, " + std::to_string(kMaxThreads) + "]");
    impl_->pool.reset();
    impl_->host_threads = host_num_threads;
  }
  impl_->host = std::move(fn);
}

void Context::ParallelFor(int64_t num_tasks, const RangeFn& body) {
  Require(num_tasks >= 0, Status::kInvalidArgument, [&] {
    return "Context::ParallelFor: num_tasks " + std::to_string(num_tasks) + " is negative";
  });
  Require(static_cast<bool>(body), Status::kInvalidArgument, "Context::ParallelFor: body is empty");
  if (num_tasks == 0) return;

  // One task, or a host that reports a single thread: nothing to share, so run on the caller
  // without waking any pool (the host's own included).
  if (impl_->host && (num_tasks == 1 || impl_->host_threads == 1)) {
    body(0, num_tasks);
    return;
  }

  if (impl_->host) {
    // Hosts' pools rarely carry exceptions across threads: catch them in the body, skip the
    // remaining tasks, rethrow here. The wrapper captures one pointer, so the RangeFn stores it
    // inline (no allocation per call).
    struct Guarded {
      explicit Guarded(const RangeFn* b) : body(b) {}
      const RangeFn* body;
      std::atomic<bool> failed{false};
      std::exception_ptr error;
      std::mutex error_mu;
    } state(&body);
    const RangeFn guarded = [s = &state](int64_t begin, int64_t end) {
      if (s->failed.load(std::memory_order_relaxed)) return;
      try {
        (*s->body)(begin, end);
      } catch (...) {
        std::lock_guard<std::mutex> lock(s->error_mu);
        if (!s->error) s->error = std::current_exception();
        s->failed.store(true, std::memory_order_relaxed);
      }
    };
    impl_->host(num_tasks, guarded);
    if (state.error) std::rethrow_exception(state.error);
    return;
  }

  // Serial cases: one thread, one task, or the pool is already running a job (a nested call
  // from inside a body, or a concurrent call that the contract forbids but must not deadlock).
  if (impl_->pool_threads == 1 || num_tasks == 1 ||
      impl_->busy.exchange(true, std::memory_order_acquire)) {
    body(0, num_tasks);
    return;
  }
  struct BusyGuard {
    std::atomic<bool>& busy;
    ~BusyGuard() { busy.store(false, std::memory_order_release); }
  } guard{impl_->busy};
  if (!impl_->pool) impl_->pool = std::make_unique<Pool>(impl_->pool_threads - 1);
  impl_->pool->Run(num_tasks, body);
}

Context& DefaultContext() {
  // Never destroyed: workers must not be joined during static destruction.
  static Context* ctx = new Context(0);
  return *ctx;
}

}  // namespace lowbit
