//===- StepProfileBench.cpp - Where a compiled training step spends time --===//
//
//   moe-bench-step <plan.moeplan> [--steps N] [--warmup W] [--seed S]
//
// Runs a single-process training plan on the runner's synthetic task, as
// moe-train does (same parameter initialization, batches and run context),
// but issues the instructions itself so it can time each kernel call. Prints
// the median step time and, per kernel (dialect op), its time per step,
// share of the step and calls per step, over the steps after the warm-up.
// The per-call clock reads add well under a microsecond per instruction.
//
//===----------------------------------------------------------------------===//
#include "moert/exec/Executor.h"
#include "moert/hal/Device.h"
#include "moert/plan/PlanLoader.h"
#include "moert/runner/PlanProgram.h"
#include "moert/runner/StepIO.h"
#include "moert/runner/SyntheticTask.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

using namespace moert;

namespace {

struct Options {
  std::string plan;
  int steps = 40, warmup = 10;
  uint64_t seed = 1;
  std::string device = "cpu";
  double modelFlops = 0; // per step, for the achieved rate
};

bool parseOptions(int argc, char **argv, Options &o) {
  const char *usage = "usage: moe-bench-step <plan.moeplan> [--steps N] "
                      "[--warmup W] [--seed S] [--device cpu|cuda] "
                      "[--model-flops F]\n";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--steps" || arg == "--warmup" || arg == "--seed") {
      char *end = nullptr;
      const long long value =
          i + 1 < argc ? std::strtoll(argv[++i], &end, 10) : -1;
      if (!end || *end != '\0' || value < (arg == "--steps" ? 1 : 0)) {
        std::fprintf(stderr,
                     "%smoe-bench-step: %s expects a %s integer, found "
                     "'%s'\n",
                     usage, arg.c_str(),
                     arg == "--steps" ? "positive" : "non-negative",
                     end ? argv[i] : "nothing");
        return false;
      }
      if (arg == "--steps")
        o.steps = static_cast<int>(value);
      else if (arg == "--warmup")
        o.warmup = static_cast<int>(value);
      else
        o.seed = static_cast<uint64_t>(value);
    } else if (arg == "--device" && i + 1 < argc) {
      o.device = argv[++i];
      if (!hal::parseBackend(o.device).ok()) {
        std::fprintf(stderr, "%smoe-bench-step: --device expects cpu or cuda, "
                     "found '%s'\n", usage, o.device.c_str());
        return false;
      }
    } else if (arg == "--model-flops" && i + 1 < argc) {
      char *end = nullptr;
      o.modelFlops = std::strtod(argv[++i], &end);
      if (!end || *end != '\0' || !(o.modelFlops > 0)) {
        std::fprintf(stderr, "%smoe-bench-step: --model-flops expects a "
                     "positive number, found '%s'\n", usage, argv[i]);
        return false;
      }
    } else if (!arg.empty() && arg[0] != '-' && o.plan.empty()) {
      o.plan = arg;
    } else {
      std::fprintf(stderr, "%smoe-bench-step: unexpected argument '%s'\n",
                   usage, arg.c_str());
      return false;
    }
  }
  if (o.plan.empty()) {
    std::fprintf(stderr, "%smoe-bench-step: no plan file given\n", usage);
    return false;
  }
  return true;
}

int fail(const Status &status) {
  std::fprintf(stderr, "moe-bench-step: error: %s\n",
               status.toString().c_str());
  return 1;
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

} // namespace

int main(int argc, char **argv) {
  Options o;
  if (!parseOptions(argc, argv, o))
    return 2;
  Expected<plan::LoadedPlan> loaded = plan::loadPlan(o.plan);
  if (!loaded.ok())
    return fail(loaded.status());
  const plan::fb::Plan &plan = loaded->plan();
  Expected<exec::Program> program = runner::programFromPlan(plan);
  if (!program.ok())
    return fail(program.status());
  if (!program->gridShape.empty())
    for (int64_t size : program->gridShape)
      if (size != 1)
        return fail(invalidArgument("the plan is partitioned for a device "
                                    "grid; moe-bench-step runs one process"));
  Expected<std::unique_ptr<hal::Device>> device =
      hal::createDevice(*hal::parseBackend(o.device), hal::DeviceOptions());
  if (!device.ok())
    return fail(device.status());
  // Kernels on a GPU run asynchronously: each timed call waits for its
  // work, so the per-kernel times add up to the step.
  const bool synchronize = !(*device)->hostAccessible();
  Expected<std::unique_ptr<exec::Executor>> created =
      exec::Executor::create(std::move(*program), **device);
  if (!created.ok())
    return fail(created.status());
  exec::Executor &executor = **created;
  const exec::Program &prog = executor.program();
  Expected<runner::BatchBuffers> batchBuffers = runner::findBatchBuffers(plan);
  if (!batchBuffers.ok())
    return fail(batchBuffers.status());
  Expected<runner::SyntheticTaskConfig> taskConfig =
      runner::syntheticTaskConfig(prog, *batchBuffers, /*alphabet=*/32);
  if (!taskConfig.ok())
    return fail(taskConfig.status());
  Expected<runner::SyntheticTask> task =
      runner::SyntheticTask::create(*taskConfig);
  if (!task.ok())
    return fail(task.status());
  if (Status status = runner::initializeAllParameters(plan, executor, o.seed);
      !status.ok())
    return fail(status);

  std::map<std::string, double> kernelSeconds;
  std::map<std::string, int64_t> kernelCalls;
  std::vector<double> stepSeconds;
  for (int step = 1; step <= o.warmup + o.steps; ++step) {
    const bool timed = step > o.warmup;
    runner::SeqBatch batch = task->batch(o.seed, step);
    if (Status status =
            runner::writeBatch(executor, *batchBuffers, batch, step);
        !status.ok())
      return fail(status);
    exec::RunContext context;
    context.seed = o.seed;
    context.step = static_cast<uint32_t>(step);
    context.training = true;
    auto stepStart = std::chrono::steady_clock::now();
    for (size_t i = 0; i < prog.instructions.size(); ++i) {
      const exec::Instruction &inst = prog.instructions[i];
      auto start = std::chrono::steady_clock::now();
      if (Status status = executor.runInstruction(i, context); !status.ok())
        return fail(status);
      if (synchronize)
        if (Status status = (*device)->synchronize(); !status.ok())
          return fail(status.withContext(inst.kernel + " at " + inst.location));
      if (timed) {
        kernelSeconds[inst.kernel] += secondsSince(start);
        ++kernelCalls[inst.kernel];
      }
    }
    if (timed)
      stepSeconds.push_back(secondsSince(stepStart));
  }

  std::vector<double> sorted = stepSeconds;
  std::sort(sorted.begin(), sorted.end());
  double total = 0.0;
  for (double s : stepSeconds)
    total += s;
  std::printf("step: median %.3f ms, mean %.3f ms over %d steps after %d "
              "warm-up; %zu instructions\n",
              sorted[sorted.size() / 2] * 1e3, total / o.steps * 1e3, o.steps,
              o.warmup, prog.instructions.size());
  std::printf("device: %s\n", (*device)->description().c_str());
  if (o.modelFlops > 0)
    std::printf("model FLOPs per step %.4g: %.2f TFLOP/s at the median "
                "step\n",
                o.modelFlops, o.modelFlops / sorted[sorted.size() / 2] / 1e12);
  std::vector<std::pair<double, std::string>> byTime;
  for (const auto &entry : kernelSeconds)
    byTime.push_back({entry.second, entry.first});
  std::sort(byTime.rbegin(), byTime.rend());
  std::printf("%-26s %12s %7s %11s\n", "kernel", "ms per step", "share",
              "calls/step");
  for (const auto &[seconds, name] : byTime)
    std::printf("%-26s %12.3f %6.1f%% %11lld\n", name.c_str(),
                seconds / o.steps * 1e3, 100.0 * seconds / total,
                static_cast<long long>(kernelCalls[name] / o.steps));
  return 0;
}
