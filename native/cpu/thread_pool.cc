#include "common/knobs.h"
#include "cpu/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <system_error>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace vitmsn {
namespace cpu {
namespace {

// The pool whose job the current thread is running, so that a nested parallel_for on the same
// pool runs inline instead of waiting forever for the job it is part of.
thread_local const ThreadPool* tls_running_pool = nullptr;

// More chunks than threads lets a thread that finishes early take work from a slower one (uneven
// tiles, a core busy with another process); a few per thread is enough for that.
constexpr int64_t kChunksPerThread = 8;

// How long a worker polls for the next job before sleeping. Long enough to bridge the gaps between
// one forward pass's parallel regions (the calling thread's serial bits: a few µs), short enough
// that an idle pool costs nothing measurable.
// VITMSN_SPIN_US overrides it (0: sleep at once), for measuring on oversubscribed machines.
std::chrono::microseconds spin_time() {
  static const std::chrono::microseconds t = [] {
    return std::chrono::microseconds(knobs::integer(knobs::Knob::kSpinUs));
  }();
  return t;
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

// Polls pred() for up to kSpin; true if it became true.
template <class Pred>
bool spin_until(Pred pred) {
  const auto limit = spin_time();
  if (limit.count() == 0) return pred();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0;; ++i) {
    if (pred()) return true;
    cpu_relax();
    if ((i & 63) == 63) {
      if (std::chrono::steady_clock::now() - t0 > limit) return false;
      // On an oversubscribed machine the thread we wait for may be queued behind us on this core.
      std::this_thread::yield();
    }
  }
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  spin_time();  // reads VITMSN_SPIN_US here, where a bad value can still fail the load, not in a worker
  const int wanted = std::max(threads, 1);
  workers_.reserve(static_cast<size_t>(wanted - 1));
  for (int i = 1; i < wanted; ++i) {
    try {
      workers_.emplace_back([this] { worker_loop(); });
    } catch (const std::system_error&) {
      break;  // the OS is out of threads: run with those we have rather than fail the load
    }
  }
  size_ = static_cast<int>(workers_.size()) + 1;
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  wake_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t work) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1 || work < kMinParallelWork || tls_running_pool == this) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> submit(submit_mu_);
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    n_ = n;
    num_chunks_ = std::min<int64_t>(n, kChunksPerThread * size_);
    chunk_ = (n + num_chunks_ - 1) / num_chunks_;
    num_chunks_ = (n + chunk_ - 1) / chunk_;
    next_chunk_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    finished_.store(0, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);  // spinning workers see the job here
    wake = sleeping_ > 0;
  }
  if (wake) wake_cv_.notify_all();
  run_chunks();
  std::exception_ptr error;
  const size_t all = workers_.size();
  spin_until([&] { return finished_.load(std::memory_order_acquire) == all; });
  {
    // fn lives on the caller's stack: no worker may still be inside it when we return.
    std::unique_lock<std::mutex> lock(mu_);
    caller_sleeping_ = true;
    done_cv_.wait(lock, [&] { return finished_.load(std::memory_order_acquire) == all; });
    caller_sleeping_ = false;
    fn_ = nullptr;
    error = std::move(error_);
    error_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

void ThreadPool::run_chunks() {
  const ThreadPool* outer = tls_running_pool;
  tls_running_pool = this;
  for (;;) {
    const int64_t c = next_chunk_.fetch_add(1, std::memory_order_relaxed);
    if (c >= num_chunks_) break;
    const int64_t begin = c * chunk_;
    const int64_t end = std::min(n_, begin + chunk_);
    try {
      (*fn_)(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::current_exception();
      next_chunk_.store(num_chunks_, std::memory_order_relaxed);  // skip what is left
    }
  }
  tls_running_pool = outer;
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    const bool got = spin_until(
        [&] { return stop_.load(std::memory_order_relaxed) || generation_.load(std::memory_order_acquire) != seen; });
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!got) {
        ++sleeping_;
        wake_cv_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
        --sleeping_;
      }
      if (stop_.load()) return;
      seen = generation_.load();
    }
    run_chunks();
    bool wake_caller;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const bool last = finished_.fetch_add(1, std::memory_order_acq_rel) + 1 == workers_.size();
      wake_caller = last && caller_sleeping_;
    }
    if (wake_caller) done_cv_.notify_one();
  }
}

}  // namespace cpu
}  // namespace vitmsn
