// A persistent pool of worker threads for the CPU kernels.
//
// parallel_for(n, fn, work) splits [0, n) into contiguous chunks and calls fn(begin, end) on each, on
// the workers and on the calling thread together, and returns when every chunk is done; a job whose
// work is below kMinParallelWork runs on the calling thread alone. Every op runs its parallel
// regions through it, so that threshold is the one place that decides when threads pay. Jobs from
// several calling threads (several forwards at once) run one after another: the cores are already
// all busy with one job, so interleaving a second would only oversubscribe them.
//
// Between jobs a worker first polls for the next one for a short, bounded time (100 µs, VITMSN_SPIN_US, with
// the CPU's pause hint), then sleeps on a condition variable: a forward pass issues ~100 parallel
// regions back to back, and a futex wake-up per region (~50–70 µs here) would cost more than
// the regions themselves at batch 1; once the pool is idle nothing spins, so a Node process that
// has other work to do keeps its cores. The caller likewise polls briefly for the last worker.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace vitmsn {
namespace cpu {

// Below this much work a job runs on the calling thread: waking the workers and waiting for the
// last one costs ~5–10 µs (more once they sleep), about what a core does in 1e5 operations. Work is
// counted in scalar operations — a flop, or a float read or written — as the caller estimates it.
constexpr int64_t kMinParallelWork = int64_t(1) << 17;
// The work of a job whose size the caller does not estimate: always worth the workers.
constexpr int64_t kUnknownWork = INT64_MAX;

class ThreadPool {
 public:
  // threads ≥ 1 counts the calling thread, so threads − 1 workers are started (threads ≤ 1 runs
  // every job inline). If the OS refuses to start a thread, the pool runs with those it has.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Calls fn(begin, end) over disjoint chunks covering [0, n); n ≤ 0 does nothing. With work <
  // kMinParallelWork (or n == 1, one thread, or a call made from inside fn: nested) it is one call
  // fn(0, n) on the calling thread. The first exception thrown by fn is rethrown here once all
  // chunks have stopped (the remaining chunks are skipped).
  void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn, int64_t work = kUnknownWork);

  // Threads that take part in a job, the caller included.
  int size() const { return size_; }

 private:
  void worker_loop();
  void run_chunks();

  int size_ = 1;
  std::vector<std::thread> workers_;

  std::mutex submit_mu_;                 // held by the caller for a whole job: one job at a time
  std::mutex mu_;                        // guards the fields below (except next_chunk_)
  std::condition_variable wake_cv_;      // workers wait here for a new generation or stop
  std::condition_variable done_cv_;      // the caller waits here for every worker to finish
  std::atomic<uint64_t> generation_{0};  // written under mu_; polled without it while spinning
  std::atomic<bool> stop_{false};
  std::atomic<size_t> finished_{0};  // workers done with the current generation
  int sleeping_ = 0;                 // workers blocked on wake_cv_ (under mu_)
  bool caller_sleeping_ = false;     // the caller blocked on done_cv_ (under mu_)

  // The current job, written under mu_ before generation_ is bumped.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 0, num_chunks_ = 0;
  std::atomic<int64_t> next_chunk_{0};
  std::exception_ptr error_;
};

}  // namespace cpu
}  // namespace vitmsn
