#include "cpu/thread_pool.h"

#include <algorithm>
#include <system_error>

namespace vitmsn {
namespace cpu {
namespace {

// The pool whose job the current thread is running, so that a nested parallel_for on the same
// pool runs inline instead of waiting forever for the job it is part of.
thread_local const ThreadPool* tls_running_pool = nullptr;

// More chunks than threads lets a thread that finishes early take work from a slower one (uneven
// tiles, a core busy with another process); a few per thread is enough for that.
constexpr int64_t kChunksPerThread = 4;

}  // namespace

ThreadPool::ThreadPool(int threads) {
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
    stop_ = true;
  }
  wake_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1 || tls_running_pool == this) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> submit(submit_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    n_ = n;
    num_chunks_ = std::min<int64_t>(n, kChunksPerThread * size_);
    chunk_ = (n + num_chunks_ - 1) / num_chunks_;
    num_chunks_ = (n + chunk_ - 1) / chunk_;
    next_chunk_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    finished_ = 0;
    ++generation_;
  }
  wake_cv_.notify_all();
  run_chunks();
  std::exception_ptr error;
  {
    // fn lives on the caller's stack: no worker may still be inside it when we return.
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return finished_ == workers_.size(); });
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
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    run_chunks();
    bool last;
    {
      std::lock_guard<std::mutex> lock(mu_);
      last = ++finished_ == workers_.size();
    }
    if (last) done_cv_.notify_one();
  }
}

}  // namespace cpu
}  // namespace vitmsn
