//===- moe-train.cpp - Train a compiled plan ------------------------------===//
//
//   moe-train demo.moeplan --steps 200 [--seed 1] [--metrics run.jsonl]
//             [--log-every 10] [--alphabet 32]
//
// Loads and verifies the plan, initializes the parameters, runs the steps
// on the synthetic reversal task and reports progress (step, loss, tokens/s,
// ETA) and per-step metrics as JSON lines.
//
//===----------------------------------------------------------------------===//
#include "moert/runner/CommandLine.h"
#include "moert/runner/Trainer.h"

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <string>

using namespace moert;

namespace {

struct Options {
  std::string plan;
  int64_t steps = 100;
  uint64_t seed = 1;
  std::string metrics;
  int64_t logEvery = 10;
  int64_t alphabet = 32;
  std::string save;      // checkpoint written at the end (and every saveEvery)
  int64_t saveEvery = 0; // 0: only at the end
  std::string resume;    // checkpoint to continue from
};

const char *kUsage =
    "usage: moe-train <plan.moeplan> [--steps N] [--seed S] "
    "[--metrics FILE.jsonl] [--log-every K] [--alphabet A]\n"
    "                 [--save FILE.safetensors] [--save-every K] "
    "[--resume FILE.safetensors]\n"
    "  --alphabet A  content tokens of the synthetic reversal task "
    "(default 32; 0 = whole vocabulary)\n"
    "  --resume F    continue from checkpoint F (same plan and --seed) up to "
    "--steps\n";

/// Parses the command line; on error prints what was expected and found.
bool parseOptions(int argc, char **argv, Options &options) {
  runner::CommandLine cl("moe-train", kUsage, argc, argv);
  while (cl.next()) {
    const std::string &arg = cl.arg();
    bool ok = true;
    if (arg == "--steps") {
      ok = cl.integer(1, options.steps);
    } else if (arg == "--seed") {
      int64_t seed = 0;
      ok = cl.integer(0, seed);
      options.seed = static_cast<uint64_t>(seed);
    } else if (arg == "--metrics") {
      ok = cl.value(options.metrics);
    } else if (arg == "--log-every") {
      ok = cl.integer(1, options.logEvery);
    } else if (arg == "--alphabet") {
      ok = cl.integer(0, options.alphabet);
    } else if (arg == "--save") {
      ok = cl.value(options.save);
    } else if (arg == "--resume") {
      ok = cl.value(options.resume);
    } else if (arg == "--save-every") {
      ok = cl.integer(1, options.saveEvery);
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (cl.isFlag()) {
      ok = cl.unknownOption();
    } else if (options.plan.empty()) {
      options.plan = arg;
    } else {
      ok = cl.error("expected one plan file, found a second argument '" + arg +
                    "'");
    }
    if (!ok)
      return false;
  }
  if (options.plan.empty())
    return cl.error("no plan file given");
  return true;
}

std::string formatDuration(double seconds) {
  int64_t total = static_cast<int64_t>(seconds + 0.5);
  char text[32];
  std::snprintf(text, sizeof(text), "%02" PRId64 ":%02" PRId64 ":%02" PRId64,
                total / 3600, total / 60 % 60, total % 60);
  return text;
}

int fail(const Status &status) {
  std::fprintf(stderr, "moe-train: error: %s\n", status.toString().c_str());
  return 1;
}

} // namespace

int main(int argc, char **argv) {
  Options options;
  if (!parseOptions(argc, argv, options))
    return 2;

  Expected<plan::LoadedPlan> loaded = plan::loadPlan(options.plan);
  if (!loaded.ok())
    return fail(loaded.status());
  Expected<std::unique_ptr<runner::Trainer>> created = runner::Trainer::create(
      std::move(*loaded), options.seed, options.alphabet);
  if (!created.ok())
    return fail(created.status());
  runner::Trainer &trainer = **created;
  if (Status status = trainer.initializeParameters(); !status.ok())
    return fail(status);
  int64_t firstStep = 1;
  if (!options.resume.empty()) {
    Expected<int64_t> resumed = trainer.loadCheckpoint(options.resume);
    if (!resumed.ok())
      return fail(resumed.status());
    firstStep = *resumed + 1;
    if (firstStep > options.steps)
      return fail(invalidArgument("checkpoint '" + options.resume +
                                  "' is at step " + std::to_string(*resumed) +
                                  ", --steps " + std::to_string(options.steps) +
                                  " leaves nothing to do"));
    std::printf("moe-train: resumed from %s at step %" PRId64 "\n",
                options.resume.c_str(), *resumed);
  }

  std::ofstream metrics;
  if (!options.metrics.empty()) {
    // A resumed run appends to the metrics of the run it continues.
    metrics.open(options.metrics, options.resume.empty()
                                      ? std::ios::out | std::ios::trunc
                                      : std::ios::out | std::ios::app);
    // Nine significant digits print every float exactly (round trip).
    metrics.precision(9);
    if (!metrics)
      return fail(invalidArgument("cannot open the metrics file '" +
                                  options.metrics + "' for writing"));
  }
  const exec::Executor &executor = trainer.executor();
  std::printf("moe-train: plan %s (%s), %zu parameters, arena %.2f MiB, "
              "persistent %.2f MiB, seed %" PRIu64 "\n",
              options.plan.c_str(),
              trainer.plan().plan().model_name()
                  ? trainer.plan().plan().model_name()->c_str()
                  : "?",
              trainer.parameters().size(),
              executor.arenaBytes() / (1024.0 * 1024.0),
              executor.persistentBytes() / (1024.0 * 1024.0), options.seed);

  double elapsed = 0;
  int64_t tokens = 0;
  for (int64_t step = firstStep; step <= options.steps; ++step) {
    Expected<runner::StepMetrics> result = trainer.runStep(step);
    if (!result.ok())
      return fail(result.status());
    const runner::StepMetrics &m = *result;
    elapsed += m.seconds;
    tokens += m.targetTokens;
    if (metrics.is_open()) {
      metrics << "{\"step\": " << m.step << ", \"loss\": " << m.loss
              << ", \"aux_loss\": " << m.auxLoss
              << ", \"grad_norm\": " << m.gradNorm
              << ", \"lr\": " << m.learningRate
              << ", \"tokens\": " << m.targetTokens
              << ", \"seconds\": " << m.seconds << ", \"expert_counts\": [";
      for (size_t l = 0; l < m.expertCounts.size(); ++l) {
        metrics << (l ? ", [" : "[");
        for (size_t e = 0; e < m.expertCounts[l].size(); ++e)
          metrics << (e ? ", " : "") << m.expertCounts[l][e];
        metrics << "]";
      }
      metrics << "]}\n";
      metrics.flush();
    }
    bool last = step == options.steps;
    if (!options.save.empty() &&
        (last || (options.saveEvery > 0 && step % options.saveEvery == 0)))
      if (Status status = trainer.saveCheckpoint(options.save, step);
          !status.ok())
        return fail(status);
    if (step % options.logEvery == 0 || step == firstStep || last) {
      double tokensPerSecond = elapsed > 0 ? tokens / elapsed : 0.0;
      double eta = elapsed / (step - firstStep + 1) * (options.steps - step);
      std::printf("step %6" PRId64 "/%" PRId64
                  "  loss %8.4f  aux %6.4f  gnorm %8.4f  lr %.3e  "
                  "%8.0f tok/s  ETA %s\n",
                  step, options.steps, m.loss, m.auxLoss, m.gradNorm,
                  m.learningRate, tokensPerSecond, formatDuration(eta).c_str());
      std::fflush(stdout);
    }
  }
  std::printf("moe-train: %" PRId64 " steps in %s, %.0f target tokens/s\n",
              options.steps - firstStep + 1, formatDuration(elapsed).c_str(),
              elapsed > 0 ? tokens / elapsed : 0.0);
  return 0;
}
