// Random 4 KiB page reads through mmap (MADV_RANDOM) on N threads, as a
// program faulting in its data would: pages/s, and p50/p99 latency per
// first touch of a page. Each page is touched once.
//
// usage: mmap_random FILE THREADS PAGES_PER_THREAD
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: mmap_random FILE THREADS PAGES_PER_THREAD\n");
    return 2;
  }
  const int fd = ::open(argv[1], O_RDONLY);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || st.st_size < 4096) {
    std::perror(argv[1]);
    return 1;
  }
  const size_t size = static_cast<size_t>(st.st_size);
  auto* map = static_cast<const volatile char*>(::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0));
  if (map == MAP_FAILED) return std::perror("mmap"), 1;
  ::madvise(const_cast<char*>(map), size, MADV_RANDOM);
  const int threads = std::atoi(argv[2]);
  const size_t per_thread = std::strtoul(argv[3], nullptr, 10);
  const size_t pages = size / 4096;
  // Distinct pages for everyone: a shuffled prefix of all pages.
  std::vector<size_t> order(pages);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(42));
  const size_t total = std::min(pages, per_thread * threads);
  std::vector<double> latencies(total);
  std::atomic<size_t> next{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i; (i = next.fetch_add(1)) < total;) {
        const auto t0 = std::chrono::steady_clock::now();
        (void)map[order[i] * 4096];
        latencies[i] = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      }
    });
  }
  for (auto& t : pool) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::sort(latencies.begin(), latencies.end());
  std::printf("{\"pages\": %zu, \"threads\": %d, \"seconds\": %.4f, \"pages_per_s\": %.0f, \"p50_us\": %.1f, \"p99_us\": %.1f}\n",
              total, threads, seconds, static_cast<double>(total) / seconds, latencies[total / 2],
              latencies[total * 99 / 100]);
  return 0;
}
