// Tests for lowbit::Context: the fork-join pool (coverage of every task, exceptions, resize,
// nesting, teardown) and the host parallel-for hook.
#include "lowbit/context.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <dirent.h>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "lowbit/status.h"

namespace lowbit {
namespace {

// Runs one ParallelFor over num_tasks and checks that every task ran exactly once, in non-empty
// in-range contiguous ranges.
void ExpectEachTaskOnce(Context& ctx, int64_t num_tasks) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(num_tasks));
  std::atomic<bool> bad_range{false};
  ctx.ParallelFor(num_tasks, [&](int64_t begin, int64_t end) {
    if (begin < 0 || end > num_tasks || begin >= end) bad_range = true;
    for (int64_t i = begin; i < end && i < num_tasks && i >= 0; ++i) {
      hits[static_cast<size_t>(i)].fetch_add(1, std::memory_order_relaxed);
    }
  });
  EXPECT_FALSE(bad_range) << "num_tasks " << num_tasks;
  int64_t wrong = 0;
  for (const auto& h : hits) wrong += (h.load() != 1);
  EXPECT_EQ(wrong, 0) << "tasks not run exactly once, num_tasks " << num_tasks
                      << " threads " << ctx.num_threads();
}

// Threads of this process, from /proc/self/task (Linux).
int CountProcessThreads() {
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(dir)) n += (e->d_name[0] != '.');
  closedir(dir);
  return n;
}

TEST(ContextTest, EveryTaskExactlyOnceForManySizesAndThreadCounts) {
  for (int threads : {1, 2, 3, 4, 7, 16}) {
    Context ctx(threads);
    EXPECT_EQ(ctx.num_threads(), threads);
    for (int64_t n : {1, 2, 3, 5, 8, 15, 16, 17, 63, 64, 65, 100, 1000, 4097, 100003}) {
      ExpectEachTaskOnce(ctx, n);
    }
  }
}

TEST(ContextTest, ManyBackToBackCallsSumCorrectly) {
  // Exercises the epoch handshake: workers that wake late must never run a newer job's chunk
  // with an older job's body.
  Context ctx(4);
  for (int call = 0; call < 20000; ++call) {
    const int64_t n = 1 + call % 37;
    std::atomic<int64_t> sum{0};
    ctx.ParallelFor(n, [&](int64_t begin, int64_t end) {
      int64_t local = 0;
      for (int64_t i = begin; i < end; ++i) local += i + call;
      sum += local;
    });
    ASSERT_EQ(sum.load(), n * (n - 1) / 2 + n * call) << "call " << call;
  }
}

TEST(ContextTest, UsesSeveralThreads) {
  Context ctx(3);
  std::mutex mu;
  std::set<std::thread::id> ids;
  // Sleeping tasks leave room for every thread to claim work even on a loaded machine.
  ctx.ParallelFor(12, [&](int64_t, int64_t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::lock_guard<std::mutex> lock(mu);
    ids.insert(std::this_thread::get_id());
  });
  EXPECT_GE(ids.size(), 2u);
  EXPECT_LE(ids.size(), 3u);
}

TEST(ContextTest, OneThreadRunsOnCallerInOneRange) {
  Context ctx(1);
  int calls = 0;
  const std::thread::id caller = std::this_thread::get_id();
  ctx.ParallelFor(1000, [&](int64_t begin, int64_t end) {
    ++calls;
    EXPECT_EQ(begin, 0);
    EXPECT_EQ(end, 1000);
    EXPECT_EQ(std::this_thread::get_id(), caller);
  });
  EXPECT_EQ(calls, 1);
}

TEST(ContextTest, RethrowsFirstExceptionAfterAllFinishedAndStaysUsable) {
  Context ctx(4);
  std::atomic<int> running{0};
  try {
    ctx.ParallelFor(64, [&](int64_t begin, int64_t end) {
      ++running;
      if (begin <= 5 && 5 < end) {
        --running;
        throw std::runtime_error("task 5 failed");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      --running;
    });
    FAIL() << "ParallelFor did not rethrow";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "task 5 failed");
    // No body call may still be running once ParallelFor has returned.
    EXPECT_EQ(running.load(), 0);
  }
  ExpectEachTaskOnce(ctx, 1000);
}

TEST(ContextTest, ManyThrowersRethrowExactlyOneLowbitError) {
  Context ctx(3);
  for (int rep = 0; rep < 50; ++rep) {
    try {
      ctx.ParallelFor(30, [&](int64_t begin, int64_t) {
        throw Error(Status::kInvalidArgument, "range " + std::to_string(begin));
      });
      FAIL() << "no exception";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::kInvalidArgument);
      EXPECT_EQ(e.message().rfind("range ", 0), 0u);
    }
  }
  ExpectEachTaskOnce(ctx, 77);
}

TEST(ContextTest, SerialPathPropagatesException) {
  Context ctx(1);
  EXPECT_THROW(ctx.ParallelFor(10, [](int64_t, int64_t) { throw std::logic_error("x"); }),
               std::logic_error);
}

TEST(ContextTest, HostParallelForIsUsedAndLowbitStartsNoThreads) {
  const int threads_before = CountProcessThreads();
  Context ctx(4);
  int host_calls = 0;
  // A host that calls body in reverse order with ranges of 3 tasks on the calling thread.
  ctx.SetParallelFor(
      [&](int64_t num_tasks, const Context::RangeFn& body) {
        ++host_calls;
        for (int64_t end = num_tasks; end > 0; end -= 3) body(std::max<int64_t>(0, end - 3), end);
      },
      6);
  EXPECT_EQ(ctx.num_threads(), 6);
  for (int64_t n : {1, 2, 10, 1001}) ExpectEachTaskOnce(ctx, n);
  EXPECT_EQ(host_calls, 3);  // a single task runs on the caller without the host
  EXPECT_EQ(CountProcessThreads(), threads_before);
  EXPECT_EQ(CountProcessThreads(), threads_before);

  // Removing the hook restores the built-in pool with its old size.
  ctx.SetParallelFor(nullptr, 0);
  EXPECT_EQ(ctx.num_threads(), 4);
  ExpectEachTaskOnce(ctx, 1000);
  EXPECT_EQ(host_calls, 3);
}

TEST(ContextTest, SingleTaskOrSingleThreadNeverWakesAPool) {
  // Built-in pool: one task, or one thread, runs on the caller and starts no worker.
  const int threads_before = CountProcessThreads();
  Context pool(4);
  const std::thread::id caller = std::this_thread::get_id();
  std::thread::id ran_on;
  pool.ParallelFor(1, [&](int64_t begin, int64_t end) {
    EXPECT_EQ(begin, 0);
    EXPECT_EQ(end, 1);
    ran_on = std::this_thread::get_id();
  });
  EXPECT_EQ(ran_on, caller);
  EXPECT_EQ(CountProcessThreads(), threads_before);
  Context one(1);
  int64_t calls = 0;
  one.ParallelFor(1000, [&](int64_t begin, int64_t end) {
    ++calls;
    EXPECT_EQ(begin, 0);
    EXPECT_EQ(end, 1000);
    EXPECT_EQ(std::this_thread::get_id(), caller);
  });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(CountProcessThreads(), threads_before);

  // Host parallel-for: not called for one task, nor at all when it reports one thread.
  int host_calls = 0;
  const auto host = [&](int64_t num_tasks, const Context::RangeFn& body) {
    ++host_calls;
    body(0, num_tasks);
  };
  Context hosted(1);
  hosted.SetParallelFor(host, 4);
  ExpectEachTaskOnce(hosted, 1);
  EXPECT_EQ(host_calls, 0);
  ExpectEachTaskOnce(hosted, 2);
  EXPECT_EQ(host_calls, 1);
  hosted.SetParallelFor(host, 1);
  ExpectEachTaskOnce(hosted, 1000);
  EXPECT_EQ(host_calls, 1);
}

TEST(ContextTest, HostParallelForOnOtherThreadsCarriesExceptions) {
  Context ctx(1);
  ctx.SetParallelFor(
      [](int64_t num_tasks, const Context::RangeFn& body) {
        // A host pool that would terminate on an escaping exception: lowbit must catch it.
        std::vector<std::thread> threads;
        for (int64_t t = 0; t < num_tasks; ++t) threads.emplace_back([&body, t] { body(t, t + 1); });
        for (auto& th : threads) th.join();
      },
      2);
  ExpectEachTaskOnce(ctx, 8);
  EXPECT_THROW(ctx.ParallelFor(8,
                               [](int64_t begin, int64_t) {
                                 if (begin == 3) throw std::out_of_range("three");
                               }),
               std::out_of_range);
}

TEST(ContextTest, InstallingHostJoinsBuiltInWorkers) {
  const int threads_before = CountProcessThreads();
  Context ctx(3);
  ExpectEachTaskOnce(ctx, 100);  // starts 2 workers
  EXPECT_EQ(CountProcessThreads(), threads_before + 2);
  ctx.SetParallelFor([](int64_t n, const Context::RangeFn& body) { body(0, n); }, 1);
  EXPECT_EQ(CountProcessThreads(), threads_before);
}

TEST(ContextTest, ResizeKeepsWorking) {
  const int threads_before = CountProcessThreads();
  Context ctx(1);
  EXPECT_EQ(CountProcessThreads(), threads_before);  // workers start lazily
  for (int threads : {4, 2, 1, 8, 3}) {
    ctx.SetNumThreads(threads);
    EXPECT_EQ(ctx.num_threads(), threads);
    ExpectEachTaskOnce(ctx, 999);
    EXPECT_EQ(CountProcessThreads(), threads_before + threads - 1);
  }
  ctx.SetNumThreads(0);
  EXPECT_EQ(ctx.num_threads(),
            static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  ExpectEachTaskOnce(ctx, 50);
}

TEST(ContextTest, NestedCallOnSameContextRunsSerially) {
  Context ctx(4);
  std::vector<std::atomic<int>> hits(40 * 25);
  ctx.ParallelFor(40, [&](int64_t begin, int64_t end) {
    for (int64_t outer = begin; outer < end; ++outer) {
      ctx.ParallelFor(25, [&](int64_t b, int64_t e) {
        for (int64_t inner = b; inner < e; ++inner) hits[outer * 25 + inner]++;
      });
    }
  });
  for (const auto& h : hits) ASSERT_EQ(h.load(), 1);
}

TEST(ContextTest, NestedCallOnOtherContextWorks) {
  Context outer_ctx(2), inner_ctx(2);
  std::atomic<int64_t> total{0};
  outer_ctx.ParallelFor(4, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      // Only one outer task may use inner_ctx at a time (the contract); serialize them.
      static std::mutex mu;
      std::lock_guard<std::mutex> lock(mu);
      inner_ctx.ParallelFor(100, [&](int64_t b, int64_t e) { total += e - b; });
    }
  });
  EXPECT_EQ(total.load(), 400);
}

TEST(ContextTest, ConcurrentMisuseDegradesToSerialWithoutDeadlock) {
  Context ctx(2);
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; ++c) {
    callers.emplace_back([&] {
      for (int i = 0; i < 300; ++i) {
        ctx.ParallelFor(10, [&](int64_t b, int64_t e) { total += e - b; });
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(total.load(), 3 * 300 * 10);
}

TEST(ContextTest, DestructionWithIdleWorkers) {
  for (int rep = 0; rep < 20; ++rep) {
    Context ctx(1 + rep % 5);
    ExpectEachTaskOnce(ctx, 100);
    // Alternately destroy while workers still spin and after they went to sleep.
    if (rep % 2) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Context never_used(8);  // no workers were started: destruction has nothing to join
  EXPECT_EQ(never_used.num_threads(), 8);
}

TEST(ContextTest, WakesSleepingWorkers) {
  Context ctx(3);
  for (int rep = 0; rep < 5; ++rep) {
    std::this_thread::sleep_for(std::chrono::milliseconds(3));  // workers go to sleep
    ExpectEachTaskOnce(ctx, 300);
  }
}

TEST(ContextTest, RejectsInvalidArguments) {
  Context ctx(2);
  EXPECT_THROW(ctx.ParallelFor(-1, [](int64_t, int64_t) {}), Error);
  EXPECT_THROW(ctx.ParallelFor(5, Context::RangeFn()), Error);
  ctx.ParallelFor(0, [](int64_t, int64_t) { FAIL() << "called for 0 tasks"; });
  EXPECT_THROW(Context(Context::kMaxThreads + 1), Error);
  EXPECT_THROW(ctx.SetNumThreads(100000), Error);
  EXPECT_EQ(ctx.num_threads(), 2);
  try {
    ctx.SetParallelFor([](int64_t, const Context::RangeFn&) {}, 0);
    FAIL() << "host_num_threads 0 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kInvalidArgument);
    EXPECT_NE(e.message().find("host_num_threads 0"), std::string::npos) << e.message();
  }
  ExpectEachTaskOnce(ctx, 10);  // the failed install changed nothing
}

TEST(ContextTest, DefaultContextIsHardwareConcurrencyAndShared) {
  Context& a = DefaultContext();
  EXPECT_EQ(&a, &DefaultContext());
  EXPECT_EQ(a.num_threads(), static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  ExpectEachTaskOnce(a, 1234);
}

}  // namespace
}  // namespace lowbit
