#include "pagerfs/remote/remote_layer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <thread>

#include "pagerfs/store/store.h"
#include "remote/http_client.h"
#include "util/lru_cache.h"
#include "util/mutex.h"
#include "util/rate_limiter.h"

namespace pagerfs {
namespace {

using Clock = std::chrono::steady_clock;
using remote::HttpClient;
using remote::HttpRequest;
using remote::HttpResponse;

// What one attempt at one mirror came to.
enum class Verdict {
  done,    // served
  absent,  // 404/410: this mirror does not have the blob
  retry,   // transport failure, 5xx, 408, 429, a short or malformed answer: try again, elsewhere
  fatal,   // 401/403: retrying does not help
};

struct Attempt {
  Verdict verdict = Verdict::retry;
  Error error;
};

Verdict verdict_of_status(long status) {
  if (status == 404 || status == 410) return Verdict::absent;
  if (status == 401 || status == 403) return Verdict::fatal;
  return Verdict::retry;
}

class RemoteLayer final : public Layer {
 public:
  RemoteLayer(const RemoteLayerOptions& options, std::shared_ptr<spdlog::logger> logger)
      : options_(options),
        logger_(std::move(logger)),
        client_(remote::HttpClientOptions{options.connect_timeout, std::chrono::seconds(5), 32}),
        mirrors_(options.urls.size()),
        sizes_(kRememberedSizes),
        heads_(kRememberedHeadBytes) {
    for (size_t i = 0; i < options_.urls.size(); ++i) {
      std::string& url = options_.urls[i];
      while (url.ends_with('/')) url.pop_back();
      mirrors_[i].shown = remote::redact_url(url);
    }
  }

  std::string_view type() const noexcept override { return "remote"; }
  uint32_t sector_size() const noexcept override { return options_.sector_size; }
  bool is_complete() const noexcept override { return true; }
  bool is_trusted() const noexcept override { return false; }

  // The size of a blob file is learnt from the first request for it, which
  // is not a HEAD but a GET of its head (kHeadBytes: the header, the seek
  // table of most blobs, often the first chunks): the Content-Range of the
  // answer gives the size, and the bytes serve the reads the pager makes
  // next (header, table), so opening a blob costs one round trip, not two.
  Result<std::optional<uint64_t>> blob_size(const Digest& digest) override {
    {
      MutexLock lock(mu_);
      if (const uint64_t* size = sizes_.get(digest)) return std::optional<uint64_t>(*size);
    }
    if (options_.locator) {  // a registry: the image's artifact lists every size
      auto located = options_.locator->locate(digest);
      if (!located) {
        if (located.error().code() == std::errc::no_such_file_or_directory) return std::optional<uint64_t>();
        return located.error();
      }
      return std::optional<uint64_t>(located.value().file_size);
    }
    uint64_t size = 0;
    auto head = std::make_shared<std::vector<std::byte>>();
    auto get = [&](const Target& target, Clock::duration timeout) -> Attempt {
      return get_head(target, timeout, &size, head.get());
    };
    PAGERFS_TRYV(with_mirrors(digest, get));
    MutexLock lock(mu_);
    sizes_.insert(digest, size, 1);
    const uint64_t cost = head->size();
    heads_.insert(digest, Head{size, std::move(head)}, cost);
    return std::optional<uint64_t>(size);
  }

  Result<void> read(const BlobExtent& blob, std::span<std::byte> out, SectorMarker& marker) override {
    const uint64_t offset = marker.first() * options_.sector_size;
    if (serve_from_head(blob, offset, out)) {
      marker.mark(marker.first(), marker.count());
      return ok();
    }
    auto get = [&](const Target& target, Clock::duration timeout) -> Attempt {
      return get_range(target, blob, offset, out, timeout);
    };
    PAGERFS_TRYV(with_mirrors(blob.digest, get));
    marker.mark(marker.first(), marker.count());
    return ok();
  }

  // The size learnt for the blob may be stale (the remote changed): ask again.
  Result<void> invalidate(const BlobExtent& blob, uint64_t, uint64_t) override {
    MutexLock lock(mu_);
    sizes_.erase(blob.digest);
    heads_.erase(blob.digest);
    return ok();
  }

  RemoteStats remote_stats() const {
    RemoteStats out;
    const Clock::time_point now = Clock::now();
    MutexLock lock(mu_);
    out.outage = outage_.on;
    out.failed_fast = failed_fast_.load(std::memory_order_relaxed);
    for (const Mirror& m : mirrors_) {
      out.mirrors.push_back({m.shown, m.requests.load(std::memory_order_relaxed),
                             m.bytes.load(std::memory_order_relaxed), m.errors.load(std::memory_order_relaxed),
                             m.retries.load(std::memory_order_relaxed), m.failovers.load(std::memory_order_relaxed),
                             m.skip_until > now, m.latency.snapshot()});
    }
    return out;
  }

 private:
  static constexpr uint64_t kRememberedSizes = 1 << 16;
  static constexpr uint64_t kHeadBytes = 64 << 10;
  static constexpr uint64_t kRememberedHeadBytes = 8 << 20;

  // The first bytes of a blob file, as one answer gave them.
  struct Head {
    uint64_t file_size = 0;
    std::shared_ptr<const std::vector<std::byte>> bytes;
  };

  // What one attempt asks: a URL, and the headers a registry wants, of
  // which mirror.
  struct Target {
    std::string url;
    std::vector<std::string> headers;
    size_t mirror = 0;
  };

  // One mirror: its counters (RemoteMirrorStats says what each counts) are
  // atomics, bumped by the readers and read by remote_stats() at any time.
  struct Mirror {
    std::string shown;                  // its URL as logs show it
    Clock::time_point skip_until{};     // GUARDED_BY(mu_)
    std::atomic<uint64_t> requests{0}, bytes{0}, errors{0}, retries{0}, failovers{0};
    LatencyHistogram latency;
  };

  // What one with_mirrors() call came to, for the outage state.
  struct Outcome {
    bool answered = false;  // some mirror served, or said 404/401/403
    unsigned failures = 0;  // attempts that failed (no answer, 5xx, malformed)
  };

  // The remote as a whole, when no mirror answers (see remote_layer.h).
  struct Outage {
    bool on = false;
    bool probing = false;               // a read is probing the remote
    Clock::time_point hold_until{};     // before this, no read probes
    std::string cause;                  // the last failure's message
  };

  static std::chrono::milliseconds to_ms(Clock::duration d) {
    return std::max(std::chrono::milliseconds(1), std::chrono::duration_cast<std::chrono::milliseconds>(d));
  }

  static Error status_error(const char* method, const std::string& url, long status) {
    const int err = status == 404 || status == 410 ? ENOENT : status == 401 || status == 403 ? EACCES : EIO;
    return Error::from_errno(err, std::string(method) + " " + remote::redact_url(url) + ": HTTP " +
                                      std::to_string(status));
  }

  // One GET of the first kHeadBytes of a blob file of unknown size: the
  // size from the answer's Content-Range (or Content-Length, from a server
  // that ignores Range), the bytes into `head`.
  Attempt get_head(const Target& target, Clock::duration timeout, uint64_t* size, std::vector<std::byte>* head) {
    const std::string& url = target.url;
    HttpRequest request{url, HttpRequest::Method::get, std::make_pair(uint64_t{0}, kHeadBytes - 1), to_ms(timeout),
                        target.headers};
    head->clear();
    bool bad_body = false;
    auto body = [&](const HttpResponse& r, std::span<const std::byte> data) {
      if (r.status != 200 && r.status != 206) return true;  // an error page: drained, judged by its status
      count_bytes(target, data.size());
      const uint64_t room = kHeadBytes - head->size();
      head->insert(head->end(), data.begin(), data.begin() + static_cast<ptrdiff_t>(std::min<uint64_t>(room, data.size())));
      if (r.status == 206 && data.size() > room) bad_body = true;  // more than the range asked for
      return head->size() < kHeadBytes && !bad_body;  // a whole file (200): cut off after the head
    };
    auto response = perform(target, request, body);
    if (!response) return {Verdict::retry, response.error()};
    const HttpResponse& r = response.value();
    if (r.status != 200 && r.status != 206) return {verdict_of_status(r.status), status_error("GET", url, r.status)};
    std::optional<uint64_t> total;
    if (r.status == 206 && r.content_range && r.content_range->first == 0 && r.content_range->total &&
        r.content_range->last == std::min(kHeadBytes, *r.content_range->total) - 1) {
      total = r.content_range->total;
    } else if (r.status == 200) {
      total = r.content_length;
    }
    if (bad_body || !total || *total == 0 || head->size() != std::min(kHeadBytes, *total)) {
      return {Verdict::retry, Error(std::make_error_code(std::errc::io_error),
                                    "GET " + remote::redact_url(url) + ": the answer is not the first " +
                                        std::to_string(kHeadBytes) + " bytes of a file of known size")};
    }
    *size = *total;
    return {Verdict::done, {}};
  }

  // Copies [offset, offset + out.size()) of the blob from the head its
  // size was learnt with, if the head holds all of it.
  bool serve_from_head(const BlobExtent& blob, uint64_t offset, std::span<std::byte> out) {
    std::shared_ptr<const std::vector<std::byte>> bytes;
    {
      MutexLock lock(mu_);
      const Head* head = heads_.get(blob.digest);
      if (head == nullptr || head->file_size != blob.size) return false;
      bytes = head->bytes;
    }
    if (offset > bytes->size() || out.size() > bytes->size() - offset) return false;
    std::memcpy(out.data(), bytes->data() + offset, out.size());
    return true;
  }

  // One GET of bytes [offset, offset + out.size()) of the blob file into `out`.
  Attempt get_range(const Target& target, const BlobExtent& blob, uint64_t offset, std::span<std::byte> out,
                    Clock::duration timeout) {
    const std::string& url = target.url;
    const uint64_t last = offset + out.size() - 1;
    HttpRequest request{url, HttpRequest::Method::get, std::make_pair(offset, last), to_ms(timeout), target.headers};
    uint64_t copied = 0;
    uint64_t position = 0;  // of the next body byte, in the blob file
    bool started = false;
    bool bad_body = false;
    auto body = [&](const HttpResponse& r, std::span<const std::byte> data) {
      if (r.status == 206) {
        if (!r.content_range || r.content_range->first != offset || r.content_range->last != last ||
            (r.content_range->total && *r.content_range->total != blob.size)) {
          bad_body = true;
          return false;
        }
        if (!started) position = offset;
      } else if (r.status != 200) {
        return true;  // an error page: drained, then judged by its status
      } else if (r.content_length && *r.content_length != blob.size) {
        bad_body = true;
        return false;
      }
      count_bytes(target, data.size());
      started = true;
      // Copy what overlaps the range.
      const uint64_t begin = std::max(position, offset);
      const uint64_t end = std::min(position + data.size(), offset + out.size());
      if (begin < end) {
        std::memcpy(out.data() + (begin - offset), data.data() + (begin - position), end - begin);
        copied += end - begin;
      }
      position += data.size();
      if (r.status == 206) {
        if (position <= offset + out.size()) return true;  // read to its end: the connection stays usable
        bad_body = true;  // more than the range asked for
        return false;
      }
      return copied < out.size();  // a whole file: cut off after the range
    };
    auto response = perform(target, request, body);
    if (!response) return {Verdict::retry, response.error()};
    const HttpResponse& r = response.value();
    if (r.status != 200 && r.status != 206) return {verdict_of_status(r.status), status_error("GET", url, r.status)};
    if (bad_body) {
      return {Verdict::retry, Error(std::make_error_code(std::errc::io_error),
                                    "GET " + remote::redact_url(url) + ": the answer is not bytes " + std::to_string(offset) + "-" +
                                        std::to_string(last) + " of a " + std::to_string(blob.size) +
                                        "-byte file")};
    }
    if (copied < out.size()) {
      return {Verdict::retry, Error(std::make_error_code(std::errc::io_error),
                                    "GET " + remote::redact_url(url) + ": the answer ended after " + std::to_string(copied) + " of " +
                                        std::to_string(out.size()) + " bytes")};
    }
    return {Verdict::done, {}};
  }

  // One HTTP request to the target's mirror, counted and timed.
  Result<HttpResponse> perform(const Target& target, const HttpRequest& request, const HttpClient::BodyFn& body) {
    Mirror& mirror = mirrors_[target.mirror];
    stats().requests.fetch_add(1, std::memory_order_relaxed);
    mirror.requests.fetch_add(1, std::memory_order_relaxed);
    const Clock::time_point start = Clock::now();
    auto response = client_.perform(request, body);
    mirror.latency.record(Clock::now() - start);
    return response;
  }

  void count_bytes(const Target& target, uint64_t n) {
    mirrors_[target.mirror].bytes.fetch_add(n, std::memory_order_relaxed);
  }

  // try_mirrors(), unless the remote is out (no mirror answered the last
  // read that asked): then the read fails at once, without a request, for
  // `outage_hold` after that failure, and afterwards while another read
  // probes the remote. Without this, the READ the kernel sends again right
  // after a failed read-ahead (for the page its reader wants) would wait a
  // second deadline for the server that just failed the first.
  template <typename AttemptFn>
  Result<void> with_mirrors(const Digest& digest, AttemptFn&& attempt) {
    bool probe = false;
    {
      MutexLock lock(mu_);
      if (outage_.on) {
        if (outage_.probing || Clock::now() < outage_.hold_until) {
          failed_fast_.fetch_add(1, std::memory_order_relaxed);
          return Error(std::make_error_code(std::errc::io_error),
                       "blob " + digest.str() + ": no remote answered a moment ago (" + outage_.cause +
                           "); failed without asking again");
        }
        outage_.probing = probe = true;  // this read probes; the others keep failing at once
      }
    }
    // Only the probe ends the probing, however it ends (an exception
    // included): a probe left marked would fail every read at once for good.
    struct ProbeEnd {
      RemoteLayer& layer;
      bool probe;
      ~ProbeEnd() {
        if (!probe) return;
        MutexLock lock(layer.mu_);
        layer.outage_.probing = false;
      }
    } probe_end{*this, probe};
    Outcome outcome;
    Result<void> result = try_mirrors(digest, attempt, outcome);
    bool began = false, ended = false;
    {
      MutexLock lock(mu_);
      if (outcome.answered) {
        ended = outage_.on;
        outage_.on = false;
      } else if (!result && outcome.failures > 0) {
        began = !outage_.on;
        outage_.on = true;
        outage_.hold_until = Clock::now() + options_.outage_hold;
        outage_.cause = result.error().message();
      }
    }
    if (began) {
      logger_->warn("remote: no mirror answered; reads fail at once for {} ms, then while one read at a time "
                    "probes, until a mirror answers",
                    options_.outage_hold.count());
    }
    if (ended) logger_->info("remote: a mirror answers again");
    return result;
  }

  // Runs `attempt` (URL of the blob at a mirror, time left) until it is done
  // or the read's attempts or deadline run out; skips mirrors that failed
  // recently while another one is usable; a blob absent from every mirror
  // is ENOENT.
  template <typename AttemptFn>
  Result<void> try_mirrors(const Digest& digest, AttemptFn&& attempt, Outcome& outcome) {
    const std::string path = "/" + Store::blob_relative_path(digest);
    const Clock::time_point deadline = Clock::now() + options_.deadline;
    // Mirrors that answered 404 (or 401/403) for this blob: not asked again
    // by this call. Moving on to the next one is not a retry.
    std::vector<bool> declined(mirrors_.size(), false);
    std::optional<Error> refused;  // a 401/403: what to say if no mirror serves
    std::optional<Error> last_error;
    size_t previous = mirrors_.size();
    std::chrono::milliseconds backoff = options_.backoff;
    unsigned failures = 0;
    while (failures < options_.attempts) {
      const size_t m = pick_mirror(declined);
      if (m == mirrors_.size()) break;  // every mirror declined
      const Clock::duration left = deadline - Clock::now();
      if (left <= Clock::duration::zero()) break;
      if (previous != mirrors_.size() && m != previous) {
        stats().failovers.fetch_add(1, std::memory_order_relaxed);
        mirrors_[previous].failovers.fetch_add(1, std::memory_order_relaxed);
      }
      previous = m;
      if (failures > 0) {
        stats().retries.fetch_add(1, std::memory_order_relaxed);
        mirrors_[m].retries.fetch_add(1, std::memory_order_relaxed);
      }
      Target target{options_.urls[m] + path, {}, m};
      if (options_.locator) {
        auto located = options_.locator->locate(digest);
        if (!located) return located.error();
        target = {std::move(located.value().url), std::move(located.value().headers), m};
      }
      Attempt a = attempt(target, std::min<Clock::duration>(left, options_.attempt_timeout));
      if (a.verdict != Verdict::retry) outcome.answered = true;
      if (a.verdict == Verdict::done) return ok();
      if (a.verdict == Verdict::fatal) mirrors_[m].errors.fetch_add(1, std::memory_order_relaxed);
      if (a.verdict == Verdict::absent || a.verdict == Verdict::fatal) {
        declined[m] = true;
        (a.verdict == Verdict::fatal ? refused : last_error) = a.error;
        continue;
      }
      mirrors_[m].errors.fetch_add(1, std::memory_order_relaxed);
      ++failures;
      outcome.failures = failures;
      last_error = a.error;
      skip_for_a_while(m, a.error);
      // Exponential backoff, jittered over its upper half, never past the deadline.
      const auto wait = std::chrono::milliseconds(jitter(backoff.count()));
      backoff *= 2;
      if (Clock::now() + wait >= deadline) break;
      std::this_thread::sleep_for(wait);
    }
    if (refused) return *refused;  // EACCES: retrying without credentials does not help
    if (std::all_of(declined.begin(), declined.end(), [](bool b) { return b; })) {
      return Error::from_errno(ENOENT, "blob " + digest.str() + " is on no remote");
    }
    // A reader is told EIO whatever the network said (ECONNREFUSED from a
    // read() would name the wrong culprit); the message, which names the
    // blob's URL, keeps the cause.
    if (last_error) return Error(std::make_error_code(std::errc::io_error), last_error->message());
    return Error(std::make_error_code(std::errc::io_error),
                 "blob " + digest.str() + ": no remote answered within " +
                     std::to_string(options_.deadline.count()) + " ms");
  }

  // The first mirror, in the given order, that has not declined the blob
  // and is not being skipped; if all are being skipped, the one whose
  // pause ends first (a failing mirror is better than none).
  size_t pick_mirror(const std::vector<bool>& declined) {
    const Clock::time_point now = Clock::now();
    MutexLock lock(mu_);
    size_t best = mirrors_.size();
    for (size_t i = 0; i < mirrors_.size(); ++i) {
      if (declined[i]) continue;
      if (mirrors_[i].skip_until <= now) return i;
      if (best == mirrors_.size() || mirrors_[i].skip_until < mirrors_[best].skip_until) best = i;
    }
    return best;
  }

  void skip_for_a_while(size_t m, const Error& error) {
    bool first = false;
    {
      MutexLock lock(mu_);
      first = mirrors_[m].skip_until <= Clock::now();
      if (mirrors_.size() > 1) mirrors_[m].skip_until = Clock::now() + options_.mirror_cooldown;
    }
    uint64_t suppressed = 0;
    if (first && fault_log_.allow(&suppressed)) {
      logger_->warn("remote {}: {}{}{}", mirrors_[m].shown, error.message(),
                    mirrors_.size() > 1 ? "; trying the other mirrors" : "; retrying",
                    suppressed ? fmt::format(" ({} similar faults not logged)", suppressed) : "");
    }
  }

  uint64_t jitter(uint64_t max_ms) {
    MutexLock lock(mu_);
    return std::uniform_int_distribution<uint64_t>(max_ms / 2, std::max<uint64_t>(max_ms, 1))(random_);
  }

  RemoteLayerOptions options_;
  std::shared_ptr<spdlog::logger> logger_;
  HttpClient client_;
  mutable Mutex mu_;
  std::vector<Mirror> mirrors_;  // skip_until GUARDED_BY(mu_); counters atomic; the rest immutable
  LruCache<Digest, uint64_t, DigestHash> sizes_ GUARDED_BY(mu_);
  LruCache<Digest, Head, DigestHash> heads_ GUARDED_BY(mu_);
  std::minstd_rand random_ GUARDED_BY(mu_){std::random_device{}()};
  RateLimiter fault_log_{std::chrono::seconds(5)};
  Outage outage_ GUARDED_BY(mu_);
  std::atomic<uint64_t> failed_fast_{0};
};

}  // namespace

Result<void> validate(const RemoteLayerOptions& options) {
  if (options.urls.empty()) return Error(errc::invalid_argument, "a remote layer needs at least one URL");
  if (options.locator && options.urls.size() != 1) {
    return Error(errc::invalid_argument, "a registry is one remote: it has no mirrors");
  }
  for (const std::string& url : options.urls) {
    if (options.locator) break;  // the locator says where blobs are
    const bool http = url.starts_with("http://"), https = url.starts_with("https://");
    const size_t host = http ? 7 : https ? 8 : 0;
    if (host == 0 || url.size() == host || url[host] == '/') {
      return Error(errc::invalid_argument, "remote '" + remote::redact_url(url) +
                                               "' is not an http:// or https:// URL with a host");
    }
    if (url.find_first_of(" \t\r\n?#") != std::string::npos) {
      return Error(errc::invalid_argument, "remote '" + remote::redact_url(url) +
                                               "' has a space, a query or a fragment: give the store's root");
    }
  }
  if (options.attempts == 0 || options.attempts > 100) {
    return Error(errc::invalid_argument, "remote attempts must be 1..100");
  }
  if (options.attempt_timeout.count() <= 0 || options.deadline.count() <= 0 || options.connect_timeout.count() <= 0) {
    return Error(errc::invalid_argument, "remote timeouts must be positive");
  }
  if (options.outage_hold.count() < 0) return Error(errc::invalid_argument, "remote outage hold must not be negative");
  return ok();
}

Result<std::shared_ptr<Layer>> make_remote_layer(const RemoteLayerOptions& options,
                                                 std::shared_ptr<spdlog::logger> logger) {
  PAGERFS_TRYV(validate(options));
  if (!logger) logger = spdlog::default_logger();
  return std::shared_ptr<Layer>(std::make_shared<RemoteLayer>(options, std::move(logger)));
}

std::optional<RemoteStats> remote_stats(const Layer& layer) {
  const auto* remote = dynamic_cast<const RemoteLayer*>(&layer);
  if (remote == nullptr) return std::nullopt;
  return remote->remote_stats();
}

}  // namespace pagerfs
