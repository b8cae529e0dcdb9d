//===- CollectiveOverlapBench.cpp - Step time with and without overlap ----===//
//
//   mpirun -np <ranks> moe-bench-overlap <plan.moeplan> [--steps N]
//       [--warmup W] [--rounds R] [--seed S]
//
// Trains a partitioned plan on the runner's synthetic task (as moe-train
// does) and times training steps with the executor's collective overlap
// off and on, in the same run: R rounds, each N steps with overlap off and
// N with it on (the order alternates between rounds, so that a drift of
// the machine's speed weighs on both), after W warm-up steps. Prints, on
// rank 0, what the plan's collective schedule allows (how many collectives
// run asynchronously, how many instructions each overlaps on average, how
// many are only waited for at the end of the step, which kernels wait for
// them and why: they read the result, or write bytes the arena gave the
// collective's operand or result), the median and the fastest step time of
// each mode (a step's time is its slowest rank's) and their ratios.
//
// A benchmark, not a test: nothing fails on a slow number.
//
//===----------------------------------------------------------------------===//
#include "BenchArgs.h"
#include "moert/comm/MpiCommunicator.h"
#include "moert/exec/Executor.h"
#include "moert/plan/PlanLoader.h"
#include "moert/runner/Trainer.h"

#include <mpi.h>

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
  std::string plan;
};

bool parseOptions(int argc, char **argv, Options &o) {
  const char *usage =
      "usage: mpirun -np <ranks> moe-bench-overlap <plan.moeplan> "
      "[--steps N] [--warmup W] [--rounds R] [--seed S]\n";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    bool valid = true;
    if (moe_bench::stepOption(argc, argv, i, "moe-bench-overlap", usage, o,
                              valid)) {
      if (!valid)
        return false;
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(usage, stdout);
      std::exit(0);
    } else if (!arg.empty() && arg[0] != '-' && o.plan.empty()) {
      o.plan = arg;
    } else {
      std::fprintf(stderr, "%smoe-bench-overlap: unexpected argument '%s'\n",
                   usage, arg.c_str());
      return false;
    }
  }
  if (o.plan.empty()) {
    std::fprintf(stderr, "%smoe-bench-overlap: no plan given\n", usage);
    return false;
  }
  return true;
}

int fail(int rank, const Status &status) {
  std::fprintf(stderr, "moe-bench-overlap: rank %d: error: %s\n", rank,
               status.toString().c_str());
  return 1;
}

} // namespace

int main(int argc, char **argv) {
  Options options;
  if (!parseOptions(argc, argv, options))
    return 2;
  comm::MpiSession mpi(&argc, &argv);
  if (!mpi.status().ok())
    return fail(0, mpi.status());
  const int rank = mpi.worldRank();
  Expected<plan::LoadedPlan> loaded = plan::loadPlan(options.plan);
  if (!loaded.ok())
    return fail(rank, loaded.status());
  std::vector<int64_t> shape = runner::gridShapeOf(loaded->plan());
  std::vector<std::string> axisNames;
  if (loaded->plan().grid()->axes())
    for (const plan::fb::GridAxis *axis : *loaded->plan().grid()->axes())
      axisNames.push_back(axis->name()->str());
  Expected<std::unique_ptr<comm::GridCommunicators>> grid =
      comm::makeMpiGrid(shape, axisNames);
  if (!grid.ok())
    return fail(rank, grid.status());
  Expected<std::unique_ptr<runner::Trainer>> trainer = runner::Trainer::create(
      std::move(*loaded), options.seed, 32, grid->get());
  if (!trainer.ok())
    return fail(rank, trainer.status());
  if (Status status = (*trainer)->initializeParameters(); !status.ok())
    return fail(rank, status);
  exec::Executor &executor = (*trainer)->executor();
  const exec::CollectiveSchedule &schedule = executor.collectiveSchedule();

  int64_t step = 1;
  // The slowest rank's time of one step (every rank takes part).
  auto timedStep = [&](double &seconds) -> Status {
    auto begin = std::chrono::steady_clock::now();
    Expected<runner::StepMetrics> metrics = (*trainer)->runStep(step++);
    double mine =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin)
            .count();
    if (!metrics.ok())
      return metrics.status();
    MPI_Allreduce(&mine, &seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return Status::success();
  };
  double ignored = 0;
  for (int64_t w = 0; w < options.warmup; ++w)
    if (Status status = timedStep(ignored); !status.ok())
      return fail(rank, status);
  std::vector<double> times[2];
  bool overlapped = true;
  for (int64_t round = 0; round < options.rounds; ++round)
    for (int k = 0; k < 2; ++k) {
      const int mode = (round + k) % 2; // 0: off, 1: on; alternating first
      executor.setCollectiveOverlap(mode == 1);
      for (int64_t s = 0; s < options.steps; ++s) {
        double seconds = 0;
        if (Status status = timedStep(seconds); !status.ok())
          return fail(rank, status);
        times[mode].push_back(seconds);
        if (mode == 1)
          overlapped = overlapped && executor.lastRunOverlapped();
      }
    }
  if (rank == 0) {
    const size_t async = schedule.numAsynchronous();
    std::printf("plan %s: %zu instructions, %zu collectives run "
                "asynchronously (%zu waited for only at the end of the step), "
                "%.1f instructions overlapped per collective on average\n",
                options.plan.c_str(), schedule.asynchronous.size(), async,
                schedule.waitAtEnd.size(),
                async ? static_cast<double>(schedule.overlappedInstructions()) /
                            async
                      : 0.0);
    // Where the plan's collectives are waited for, by the kernel that
    // needs their bytes: what ends each overlap.
    std::map<std::string, int> waits;
    const auto &instructions = executor.program().instructions;
    for (size_t j = 0; j < schedule.waitBefore.size(); ++j)
      if (!schedule.waitBefore[j].empty())
        waits[instructions[j].kernel] +=
            static_cast<int>(schedule.waitBefore[j].size());
    if (!schedule.waitAtEnd.empty())
      waits["(end of the step)"] += static_cast<int>(schedule.waitAtEnd.size());
    std::printf("collectives waited for before:");
    for (const auto &[kernel, count] : waits)
      std::printf(" %s %d;", kernel.c_str(), count);
    std::printf("\n");
    // Why: the instruction reads the result (a true dependency), or writes
    // bytes of the operand or result that the arena gave another buffer
    // once the collective's own buffer was dead in program order.
    int readsResult = 0, reusesOperand = 0, reusesResult = 0;
    const exec::Program &program = executor.program();
    for (size_t j = 0; j < schedule.waitBefore.size(); ++j)
      for (size_t i : schedule.waitBefore[j]) {
        const exec::Instruction &c = instructions[i], &w = instructions[j];
        auto overlapsAny = [&](const std::vector<int32_t> &ids,
                               int32_t target) {
          const exec::ByteRange t = exec::bufferBytes(program, target);
          for (int32_t id : ids)
            if (exec::bufferBytes(program, id).overlaps(t))
              return true;
          return false;
        };
        if (overlapsAny(w.operands, c.results[0]))
          ++readsResult;
        else if (overlapsAny(w.results, c.operands[0]))
          ++reusesOperand;
        else
          ++reusesResult;
      }
    std::printf("the waiting instruction reads the result: %d, writes the "
                "operand's bytes: %d, writes the result's bytes: %d\n",
                readsResult, reusesOperand, reusesResult);
    if (!overlapped)
      std::printf("note: the collectives did not run asynchronously (MPI "
                  "without MPI_THREAD_SERIALIZED?)\n");
    const double off = moe_bench::median(times[0]),
                 on = moe_bench::median(times[1]);
    const double offMin = *std::min_element(times[0].begin(), times[0].end());
    const double onMin = *std::min_element(times[1].begin(), times[1].end());
    std::printf("%d ranks, %lld rounds of %lld steps per mode after %lld "
                "warm-up steps\n",
                mpi.worldSize(), static_cast<long long>(options.rounds),
                static_cast<long long>(options.steps),
                static_cast<long long>(options.warmup));
    std::printf("median step time: overlap off %.2f ms, overlap on %.2f ms, "
                "on/off %.3f\n",
                off * 1e3, on * 1e3, on / off);
    std::printf("fastest step:     overlap off %.2f ms, overlap on %.2f ms, "
                "on/off %.3f\n",
                offMin * 1e3, onMin * 1e3, onMin / offMin);
  }
  return 0;
}
