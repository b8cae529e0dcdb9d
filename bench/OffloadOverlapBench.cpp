//===- OffloadOverlapBench.cpp - Offload step time, host work overlapped --===//
//
//   moe-bench-offload <offloaded.moeplan> [--baseline <plan.moeplan>]
//       [--device cpu|cuda] [--steps N] [--warmup W] [--rounds R]
//       [--seed S] [--optimizer-offload]
//
// Trains a plan whose optimizer state lives in host memory (compiled with
// offload=params or offload=optimizer, or any plan with
// --optimizer-offload, the runtime's --offload-optimizer) on the runner's
// synthetic task, as moe-train does, on one process, and times training
// steps with the executor's host-work overlap off and on in the same run:
// R rounds, each N steps with overlap off and N with it on (the order
// alternates between rounds), after W warm-up steps. With --baseline, the
// same model's plan without offload (everything on the device) is timed
// in the same rounds: what the offload costs, with and without overlap.
// Prints what the plan's host-work schedule allows (how many instructions
// touch host memory, how many device instructions each overlaps on
// average, which kernels wait for them), the median and fastest step time
// of each mode and their ratios.
//
// A benchmark, not a test: nothing fails on a slow number.
//
//===----------------------------------------------------------------------===//
#include "BenchArgs.h"
#include "moert/exec/Executor.h"
#include "moert/hal/Device.h"
#include "moert/plan/PlanLoader.h"
#include "moert/runner/Trainer.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

using namespace moert;

namespace {

struct Options : moe_bench::StepOptions {
  std::string plan, baseline, device = "cpu";
  bool optimizerOffload = false;
};

const char *kUsage =
    "usage: moe-bench-offload <offloaded.moeplan> [--baseline PLAN] "
    "[--device cpu|cuda] [--steps N] [--warmup W] [--rounds R] [--seed S] "
    "[--optimizer-offload]\n";

bool parseOptions(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    bool valid = true;
    if (moe_bench::stepOption(argc, argv, i, "moe-bench-offload", kUsage, o,
                              valid)) {
      if (!valid)
        return false;
    } else if (arg == "--baseline" || arg == "--device") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%smoe-bench-offload: %s expects a value\n",
                     kUsage, arg.c_str());
        return false;
      }
      (arg == "--baseline" ? o.baseline : o.device) = argv[++i];
    } else if (arg == "--optimizer-offload") {
      o.optimizerOffload = true;
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (!arg.empty() && arg[0] != '-' && o.plan.empty()) {
      o.plan = arg;
    } else {
      std::fprintf(stderr, "%smoe-bench-offload: unexpected argument '%s'\n",
                   kUsage, arg.c_str());
      return false;
    }
  }
  if (o.plan.empty()) {
    std::fprintf(stderr, "%smoe-bench-offload: no plan given\n", kUsage);
    return false;
  }
  return true;
}

double fastest(const std::vector<double> &values) {
  return *std::min_element(values.begin(), values.end());
}

int fail(const Status &status) {
  std::fprintf(stderr, "moe-bench-offload: error: %s\n",
               status.toString().c_str());
  return 1;
}

Expected<std::unique_ptr<runner::Trainer>> makeTrainer(const std::string &path,
                                                       const Options &options,
                                                       hal::Device &device,
                                                       bool optimizerOffload) {
  Expected<plan::LoadedPlan> loaded = plan::loadPlan(path);
  if (!loaded.ok())
    return loaded.takeStatus().withContext(path);
  MOERT_ASSIGN_OR_RETURN(std::unique_ptr<runner::Trainer> trainer,
                         runner::Trainer::create(std::move(*loaded),
                                                 options.seed, 32, nullptr,
                                                 &device, optimizerOffload));
  MOERT_RETURN_IF_ERROR(trainer->initializeParameters());
  MOERT_RETURN_IF_ERROR(trainer->refreshDeviceCopies());
  return trainer;
}

} // namespace

int main(int argc, char **argv) {
  Options options;
  if (!parseOptions(argc, argv, options))
    return 2;
  Expected<hal::Backend> backend = hal::parseBackend(options.device);
  if (!backend.ok())
    return fail(backend.takeStatus().withContext("--device"));
  Expected<std::unique_ptr<hal::Device>> device =
      hal::createDevice(*backend, hal::DeviceOptions());
  if (!device.ok())
    return fail(device.takeStatus().withContext("--device " + options.device));
  Expected<std::unique_ptr<runner::Trainer>> offloaded =
      makeTrainer(options.plan, options, **device, options.optimizerOffload);
  if (!offloaded.ok())
    return fail(offloaded.status());
  std::unique_ptr<runner::Trainer> baseline;
  if (!options.baseline.empty()) {
    Expected<std::unique_ptr<runner::Trainer>> made =
        makeTrainer(options.baseline, options, **device, false);
    if (!made.ok())
      return fail(made.status());
    baseline = std::move(*made);
  }
  exec::Executor &executor = (*offloaded)->executor();
  const exec::CollectiveSchedule &schedule = executor.hostWorkSchedule();
  if (schedule.numAsynchronous() == 0)
    return fail(failedPrecondition(
        options.plan + " keeps nothing in host memory: compile it with "
                       "offload=params or offload=optimizer, or pass "
                       "--optimizer-offload"));

  // Seconds of one step, on the device's clock (the step ends with its
  // results on the host).
  auto timedStep = [](runner::Trainer &trainer, int64_t step,
                      double &seconds) -> Status {
    auto begin = std::chrono::steady_clock::now();
    Expected<runner::StepMetrics> metrics = trainer.runStep(step);
    seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin)
            .count();
    return metrics.status();
  };
  int64_t step = 1, baselineStep = 1;
  double ignored = 0;
  for (int64_t w = 0; w < options.warmup; ++w) {
    if (Status s = timedStep(**offloaded, step++, ignored); !s.ok())
      return fail(s);
    if (baseline)
      if (Status s = timedStep(*baseline, baselineStep++, ignored); !s.ok())
        return fail(s);
  }
  // 0: overlap off, 1: on, 2: the baseline.
  std::vector<double> times[3];
  bool overlapped = true;
  for (int64_t round = 0; round < options.rounds; ++round)
    for (int k = 0; k < 3; ++k) {
      const int mode = (round + k) % 3; // a different one first each round
      if (mode == 2 && !baseline)
        continue;
      executor.setHostWorkOverlap(mode == 1);
      for (int64_t s = 0; s < options.steps; ++s) {
        double seconds = 0;
        Status status = mode == 2
                            ? timedStep(*baseline, baselineStep++, seconds)
                            : timedStep(**offloaded, step++, seconds);
        if (!status.ok())
          return fail(status);
        times[mode].push_back(seconds);
        if (mode == 1)
          overlapped = overlapped && executor.lastRunOverlappedHostWork();
      }
    }

  const size_t async = schedule.numAsynchronous();
  std::printf("plan %s on %s: %zu instructions, %zu touch host memory, "
              "%.1f instructions overlapped by each on average (%zu waited "
              "for only at the end of the step)\n",
              options.plan.c_str(), (*device)->description().c_str(),
              schedule.asynchronous.size(), async,
              static_cast<double>(schedule.overlappedInstructions()) / async,
              schedule.waitAtEnd.size());
  std::map<std::string, int> kinds, waits;
  const auto &instructions = executor.program().instructions;
  for (size_t i = 0; i < schedule.asynchronous.size(); ++i)
    if (schedule.asynchronous[i])
      ++kinds[instructions[i].kernel];
  for (size_t j = 0; j < schedule.waitBefore.size(); ++j)
    if (!schedule.waitBefore[j].empty())
      waits[instructions[j].kernel] +=
          static_cast<int>(schedule.waitBefore[j].size());
  std::printf("host work:");
  for (const auto &[kernel, count] : kinds)
    std::printf(" %s %d;", kernel.c_str(), count);
  std::printf("\nwaited for before:");
  for (const auto &[kernel, count] : waits)
    std::printf(" %s %d;", kernel.c_str(), count);
  std::printf("\n");
  if (!overlapped)
    std::printf("note: the host work did not run asynchronously (no queue "
                "for this device in this build)\n");
  std::printf("%lld rounds of %lld steps per mode after %lld warm-up steps\n",
              static_cast<long long>(options.rounds),
              static_cast<long long>(options.steps),
              static_cast<long long>(options.warmup));
  const double off = moe_bench::median(times[0]),
               on = moe_bench::median(times[1]);
  std::printf("median step time: overlap off %.2f ms, overlap on %.2f ms, "
              "on/off %.3f\n",
              off * 1e3, on * 1e3, on / off);
  std::printf("fastest step:     overlap off %.2f ms, overlap on %.2f ms, "
              "on/off %.3f\n",
              fastest(times[0]) * 1e3, fastest(times[1]) * 1e3,
              fastest(times[1]) / fastest(times[0]));
  if (baseline) {
    const double base = moe_bench::median(times[2]);
    std::printf("without offload (%s): median %.2f ms; offload costs "
                "x%.3f with overlap off, x%.3f with it on\n",
                options.baseline.c_str(), base * 1e3, off / base, on / base);
  }
  return 0;
}
