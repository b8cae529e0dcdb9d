//===- BenchArgs.h - Command-line pieces the benchmark drivers share -----===//
//
// The step-time benchmarks (moe-bench-overlap, moe-bench-offload) take the
// same integer options (--steps, --warmup, --rounds, --seed) and report
// medians; this is their one copy.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_BENCH_BENCHARGS_H
#define MOE_BENCH_BENCHARGS_H

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace moe_bench {

/// Steps timed per mode and round, warm-up steps, rounds, the run's seed.
struct StepOptions {
  int64_t steps = 10, warmup = 3, rounds = 3;
  uint64_t seed = 1;
};

/// Reads the value after argv[i] (advancing i) as an integer of at least
/// `least` into `value`; otherwise prints `usage` and an error naming
/// `tool`, the option and what was found, and returns false.
inline bool integerOption(int argc, char **argv, int &i, const char *tool,
                          const char *usage, long long least, int64_t &value) {
  const std::string option = argv[i];
  char *end = nullptr;
  const long long parsed =
      i + 1 < argc ? std::strtoll(argv[++i], &end, 10) : least - 1;
  if (!end || *end != '\0' || parsed < least) {
    std::fprintf(stderr, "%s%s: %s expects an integer >= %lld, found '%s'\n",
                 usage, tool, option.c_str(), least, end ? argv[i] : "nothing");
    return false;
  }
  value = parsed;
  return true;
}

/// Whether argv[i] is --steps, --warmup, --rounds or --seed; then its value
/// (advancing i) goes into `o`, and `ok` says whether it was a valid one
/// (otherwise the error is printed as integerOption does).
inline bool stepOption(int argc, char **argv, int &i, const char *tool,
                       const char *usage, StepOptions &o, bool &ok) {
  const std::string arg = argv[i];
  int64_t *target = arg == "--steps"    ? &o.steps
                    : arg == "--warmup" ? &o.warmup
                    : arg == "--rounds" ? &o.rounds
                                        : nullptr;
  int64_t seed = 0;
  if (!target && arg != "--seed")
    return false;
  const long long least = arg == "--warmup" || arg == "--seed" ? 0 : 1;
  ok =
      integerOption(argc, argv, i, tool, usage, least, target ? *target : seed);
  if (ok && !target)
    o.seed = static_cast<uint64_t>(seed);
  return true;
}

/// The median of `values` (not empty).
inline double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

} // namespace moe_bench

#endif // MOE_BENCH_BENCHARGS_H
