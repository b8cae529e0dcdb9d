//===- RunnerMpiTest.cpp - The trainer on a grid of MPI processes ---------===//
//
// Run under mpirun (2 and 4 processes) with the hand-written partitioned
// step of TinyPlan.h on every grid of the world's size:
//   * freshly initialized parameters gathered into a checkpoint equal, byte
//     for byte, the checkpoint of the one-rank plan (the same logical
//     values; each rank drew the logical tensor and kept its shard);
//   * a checkpoint written on one grid, loaded on any other grid (and by
//     one process on the one-rank plan) and saved again is the same file:
//     loading cuts exactly each rank's shard, saving puts them back;
//   * resuming is bit-exact: 2 steps + save + load + 2 steps gives the
//     checkpoint and losses of 4 uninterrupted steps.
//
//===----------------------------------------------------------------------===//
#include "TinyPlan.h"

#include "moert/comm/MpiCommunicator.h"
#include "moert/plan/PlanLoader.h"
#include "moert/runner/Trainer.h"

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

using namespace moert;
using namespace moert::runner;

namespace {

int worldRank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int worldSize() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

/// (dp, tp) grids with the world's number of ranks.
std::vector<std::pair<int, int>> grids() {
  switch (worldSize()) {
  case 2:
    return {{2, 1}, {1, 2}};
  case 4:
    return {{2, 2}, {4, 1}, {1, 4}};
  default:
    return {{1, worldSize()}};
  }
}

/// A directory every rank shares: rank 0 makes it and removes it when the
/// test is done.
class SharedTempDir {
public:
  SharedTempDir() {
    char name[256] = "/tmp/moert-runner-mpi-XXXXXX";
    if (worldRank() == 0 && !mkdtemp(name))
      name[0] = '\0';
    MPI_Bcast(name, sizeof(name), MPI_CHAR, 0, MPI_COMM_WORLD);
    path_ = name;
  }
  ~SharedTempDir() {
    MPI_Barrier(MPI_COMM_WORLD);
    if (worldRank() == 0 && !path_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(path_, ignored);
    }
  }
  const std::string &path() const { return path_; }

private:
  std::string path_;
};

std::vector<uint8_t> fileBytes(const std::string &path) {
  std::ifstream file(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(file)),
                              std::istreambuf_iterator<char>());
}

/// A trainer of the tiny plan on a (dp, tp) grid of MPI processes.
struct GridTrainer {
  std::unique_ptr<comm::GridCommunicators> grid;
  std::unique_ptr<Trainer> trainer;
  Status status;

  GridTrainer(int dp, int tp) {
    auto made = comm::makeMpiGrid({dp, 1, tp}, {"dp", "ep", "tp"});
    if (!made.ok()) {
      status = made.status();
      return;
    }
    grid = std::move(*made);
    auto loaded =
        plan::loadPlanFromBytes(runner::testing::makeTinyPlan(dp, tp));
    if (!loaded.ok()) {
      status = loaded.status();
      return;
    }
    auto created = Trainer::create(std::move(*loaded), 7, 0, grid.get());
    if (!created.ok()) {
      status = created.status();
      return;
    }
    trainer = std::move(*created);
    status = trainer->initializeParameters();
  }
};

std::string gridName(std::pair<int, int> grid) {
  return "dp=" + std::to_string(grid.first) +
         " tp=" + std::to_string(grid.second);
}

TEST(RunnerMpi, InitialShardsGatherToTheOneRankParameters) {
  SharedTempDir temp;
  const std::string &dir = temp.path();
  ASSERT_FALSE(dir.empty());
  std::string reference = dir + "/one-rank.safetensors";
  if (worldRank() == 0) {
    auto loaded = plan::loadPlanFromBytes(runner::testing::makeTinyPlan(1, 1));
    ASSERT_TRUE(loaded.ok());
    auto trainer = Trainer::create(std::move(*loaded), 7, 0);
    ASSERT_TRUE(trainer.ok()) << trainer.status().toString();
    ASSERT_TRUE((*trainer)->initializeParameters().ok());
    Status saved = (*trainer)->saveCheckpoint(reference, 0);
    EXPECT_TRUE(saved.ok()) << saved.toString();
  }
  MPI_Barrier(MPI_COMM_WORLD);
  for (std::pair<int, int> grid : grids()) {
    GridTrainer run(grid.first, grid.second);
    ASSERT_TRUE(run.status.ok()) << run.status.toString(); // on every rank
    std::string path = dir + "/initial.safetensors";
    Status saved = run.trainer->saveCheckpoint(path, 0);
    EXPECT_TRUE(saved.ok()) << saved.toString();
    if (worldRank() == 0)
      EXPECT_EQ(fileBytes(path), fileBytes(reference)) << gridName(grid);
  }
}

TEST(RunnerMpi, CheckpointsLoadOnEveryGrid) {
  SharedTempDir temp;
  const std::string &dir = temp.path();
  ASSERT_FALSE(dir.empty());
  for (std::pair<int, int> writer : grids()) {
    std::string written = dir + "/written.safetensors";
    {
      GridTrainer run(writer.first, writer.second);
      ASSERT_TRUE(run.status.ok()) << run.status.toString();
      for (int64_t step = 1; step <= 2; ++step)
        EXPECT_TRUE(run.trainer->runStep(step).ok());
      EXPECT_TRUE(run.trainer->saveCheckpoint(written, 2).ok());
    }
    for (std::pair<int, int> reader : grids()) {
      GridTrainer run(reader.first, reader.second);
      ASSERT_TRUE(run.status.ok()) << run.status.toString();
      Expected<int64_t> step = run.trainer->loadCheckpoint(written);
      EXPECT_TRUE(step.ok()) << step.status().toString();
      std::string again = dir + "/again.safetensors";
      EXPECT_TRUE(run.trainer->saveCheckpoint(again, 2).ok());
      if (worldRank() == 0)
        EXPECT_EQ(fileBytes(again), fileBytes(written))
            << "written on " << gridName(writer) << ", loaded on "
            << gridName(reader);
    }
    // One process on the one-rank plan reads it too.
    if (worldRank() == 0) {
      auto loaded =
          plan::loadPlanFromBytes(runner::testing::makeTinyPlan(1, 1));
      ASSERT_TRUE(loaded.ok());
      auto trainer = Trainer::create(std::move(*loaded), 7, 0);
      ASSERT_TRUE(trainer.ok());
      EXPECT_TRUE((*trainer)->loadCheckpoint(written).ok());
      std::string again = dir + "/one-rank-again.safetensors";
      EXPECT_TRUE((*trainer)->saveCheckpoint(again, 2).ok());
      EXPECT_EQ(fileBytes(again), fileBytes(written))
          << "written on " << gridName(writer) << ", loaded on one rank";
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

TEST(RunnerMpi, ResumeIsBitExact) {
  SharedTempDir temp;
  const std::string &dir = temp.path();
  ASSERT_FALSE(dir.empty());
  for (std::pair<int, int> grid : grids()) {
    std::vector<float> straightLosses, resumedLosses;
    std::string straight = dir + "/straight.safetensors";
    std::string half = dir + "/half.safetensors";
    std::string resumed = dir + "/resumed.safetensors";
    {
      GridTrainer run(grid.first, grid.second);
      ASSERT_TRUE(run.status.ok()) << run.status.toString();
      for (int64_t step = 1; step <= 4; ++step) {
        Expected<StepMetrics> m = run.trainer->runStep(step);
        EXPECT_TRUE(m.ok());
        straightLosses.push_back(m.ok() ? m->loss : 0.0f);
      }
      EXPECT_TRUE(run.trainer->saveCheckpoint(straight, 4).ok());
    }
    {
      GridTrainer run(grid.first, grid.second);
      ASSERT_TRUE(run.status.ok());
      for (int64_t step = 1; step <= 2; ++step) {
        Expected<StepMetrics> m = run.trainer->runStep(step);
        resumedLosses.push_back(m.ok() ? m->loss : 0.0f);
      }
      EXPECT_TRUE(run.trainer->saveCheckpoint(half, 2).ok());
    }
    {
      GridTrainer run(grid.first, grid.second);
      ASSERT_TRUE(run.status.ok());
      Expected<int64_t> at = run.trainer->loadCheckpoint(half);
      EXPECT_TRUE(at.ok() && *at == 2);
      for (int64_t step = 3; step <= 4; ++step) {
        Expected<StepMetrics> m = run.trainer->runStep(step);
        resumedLosses.push_back(m.ok() ? m->loss : 0.0f);
      }
      EXPECT_TRUE(run.trainer->saveCheckpoint(resumed, 4).ok());
    }
    EXPECT_EQ(resumedLosses, straightLosses) << gridName(grid);
    if (worldRank() == 0)
      EXPECT_EQ(fileBytes(resumed), fileBytes(straight)) << gridName(grid);
  }
}

} // namespace
