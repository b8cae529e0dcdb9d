//===- CollectiveScheduleTest.cpp - Wait points of async collectives ------===//
//
// scheduleCollectives on hand-made instruction lists (the analysis reads
// buffers, regions and offsets, never runs a kernel), including arena
// buffers that share bytes under different ids; the host collective queue
// (a thread) on hand-made work: order, waits, errors; the executor on
// a stand-in grid whose collective only completes once the instruction
// after it has run, which it can only do with overlap; and the offload's
// host work (scheduleHostWork) on its own queue beside the compute, the
// same bits as in program order.
//
//===----------------------------------------------------------------------===//
#include "moert/exec/CollectiveSchedule.h"
#include "moert/comm/Communicator.h"
#include "moert/exec/CollectiveQueue.h"
#include "moert/exec/Executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>

using namespace moert;
using namespace moert::exec;

namespace {

/// A program on a dp=2 x ep=2 x tp=1 grid whose buffers are placed by hand.
struct Hand {
  Program program;
  Hand() { program.gridShape = {2, 2, 1}; }

  /// f32[elements] (or `dtype`) in `kind` at byte `offset`.
  int32_t buffer(int64_t elements, BufferKind kind, int64_t offset,
                 DType dtype = DType::F32) {
    Buffer b;
    b.type = {dtype, {elements}};
    b.kind = kind;
    b.offset = offset;
    b.name = "b" + std::to_string(program.buffers.size());
    program.buffers.push_back(b);
    return static_cast<int32_t>(program.buffers.size() - 1);
  }
  int32_t arena(int64_t elements, int64_t offset) {
    return buffer(elements, BufferKind::Arena, offset);
  }
  int32_t persistent(int64_t elements, int64_t offset) {
    return buffer(elements, BufferKind::Persistent, offset);
  }
  int32_t host(int64_t elements, int64_t offset) {
    return buffer(elements, BufferKind::Host, offset);
  }
  void op(const std::string &kernel, std::vector<int32_t> operands,
          std::vector<int32_t> results,
          std::map<std::string, AttrValue> attrs = {}) {
    Instruction inst;
    inst.kernel = kernel;
    inst.operands = std::move(operands);
    inst.results = std::move(results);
    inst.attrs = std::move(attrs);
    inst.location = "test";
    program.instructions.push_back(inst);
  }
  void compute(std::vector<int32_t> operands, std::vector<int32_t> results) {
    Instruction inst;
    inst.kernel = "moe.add";
    inst.operands = std::move(operands);
    inst.results = std::move(results);
    program.instructions.push_back(inst);
  }
  void collective(const std::string &kernel, int32_t operand, int32_t result,
                  std::vector<int> axes = {0}) {
    Instruction inst;
    inst.kernel = kernel;
    inst.operands = {operand};
    inst.results = {result};
    CollectiveInfo info;
    info.axes = std::move(axes);
    info.reduction = Reduction::Sum;
    inst.collective = info;
    program.instructions.push_back(inst);
  }
};

std::vector<size_t> none() { return {}; }

TEST(CollectiveSchedule, WaitsBeforeTheFirstReaderOfTheResult) {
  Hand h;
  int32_t grad = h.arena(64, 0), reduced = h.arena(64, 256);
  int32_t x = h.arena(64, 512), y = h.arena(64, 768);
  h.compute({x}, {grad});                          // 0
  h.collective("shard.all_reduce", grad, reduced); // 1
  h.compute({x}, {y});                             // 2: independent
  h.compute({grad}, {x});                          // 3: reads the operand
  h.compute({reduced}, {y});                       // 4: reads the result
  CollectiveSchedule s = scheduleCollectives(h.program);
  EXPECT_EQ(s.asynchronous,
            (std::vector<bool>{false, true, false, false, false}));
  EXPECT_EQ(s.waitPoint[1], 4u);
  EXPECT_EQ(s.waitBefore[4], std::vector<size_t>{1});
  for (size_t j : {0, 1, 2, 3})
    EXPECT_EQ(s.waitBefore[j], none()) << j;
  EXPECT_TRUE(s.waitAtEnd.empty());
  EXPECT_EQ(s.overlappedInstructions(), 2u);
}

TEST(CollectiveSchedule, WaitsBeforeAWriteToTheOperandOrResult) {
  Hand h;
  int32_t grad = h.arena(64, 0), reduced = h.arena(64, 256);
  int32_t x = h.arena(64, 512);
  h.collective("shard.all_reduce", grad, reduced); // 0
  h.compute({x}, {x});                             // 1
  h.compute({x}, {grad});                          // 2: overwrites the operand
  EXPECT_EQ(scheduleCollectives(h.program).waitPoint[0], 2u);

  Hand w;
  grad = w.arena(64, 0), reduced = w.arena(64, 256), x = w.arena(64, 512);
  w.collective("shard.all_gather", grad, reduced); // 0
  w.compute({x}, {reduced});                       // 1: write after write
  EXPECT_EQ(scheduleCollectives(w.program).waitPoint[0], 1u);
}

TEST(CollectiveSchedule, AliasedArenaBytesUnderAnotherIdAreAConflict) {
  // The arena gives `reused` part of the bytes of the collective's operand
  // (their live ranges are disjoint in the compiler's view): writing it is
  // writing the operand.
  Hand h;
  int32_t grad = h.arena(64, 0); // bytes [0, 256)
  int32_t reduced = h.arena(64, 256);
  int32_t x = h.arena(16, 1024);
  int32_t reused = h.arena(16, 192);   // bytes [192, 256): the operand's tail
  int32_t adjacent = h.arena(16, 512); // [512, 576): touches nothing
  h.collective("shard.reduce_scatter", grad, reduced); // 0
  h.compute({x}, {adjacent});                          // 1
  h.compute({x}, {reused});                            // 2
  CollectiveSchedule s = scheduleCollectives(h.program);
  EXPECT_EQ(s.waitPoint[0], 2u);
  EXPECT_EQ(s.waitBefore[2], std::vector<size_t>{0});

  // Reading bytes of the result under another id waits too.
  Hand r;
  grad = r.arena(64, 0);
  reduced = r.arena(64, 256); // [256, 512)
  x = r.arena(16, 1024);
  int32_t view = r.arena(8, 480); // [480, 512)
  int32_t out = r.arena(8, 2048);
  r.collective("shard.all_to_all", grad, reduced);
  r.compute({x}, {out});
  r.compute({view}, {out});
  EXPECT_EQ(scheduleCollectives(r.program).waitPoint[0], 2u);
}

TEST(CollectiveSchedule, TouchingOrOtherRegionBytesAreNoConflict) {
  Hand h;
  int32_t grad = h.arena(64, 0), reduced = h.arena(64, 256); // [0, 512)
  int32_t after = h.arena(16, 512);          // starts where the result ends
  int32_t samePlace = h.persistent(64, 256); // same offset, other region
  int32_t zero = h.buffer(64, BufferKind::Constant, 0);
  int32_t out = h.arena(16, 4096);
  h.collective("shard.all_reduce", grad, reduced); // 0
  h.compute({zero}, {after});                      // 1
  h.compute({samePlace}, {samePlace});             // 2
  CollectiveSchedule s = scheduleCollectives(h.program);
  EXPECT_EQ(s.waitPoint[0], 3u); // the end of the step
  EXPECT_EQ(s.waitAtEnd, std::vector<size_t>{0});
  (void)out;

  // A constant operand is never written: no later instruction conflicts
  // with it (constants all sit at offset 0).
  Hand c;
  int32_t constant = c.buffer(64, BufferKind::Constant, 0);
  int32_t gathered = c.arena(128, 0);
  int32_t other = c.buffer(64, BufferKind::Constant, 0);
  int32_t o = c.arena(64, 1024);
  c.collective("shard.all_gather", constant, gathered);
  c.compute({other}, {o});
  EXPECT_EQ(scheduleCollectives(c.program).waitAtEnd, std::vector<size_t>{0});
}

TEST(CollectiveSchedule, OnlyCollectivesThatCommunicateAreAsynchronous) {
  Hand h;
  int32_t a = h.arena(64, 0), b = h.arena(64, 256), c = h.arena(32, 512);
  h.collective("shard.all_reduce", a, b, {2});    // tp has one rank: a copy
  h.collective("shard.all_slice", a, c, {0});     // local
  h.collective("shard.all_reduce", a, b, {0, 1}); // 4 ranks
  CollectiveSchedule s = scheduleCollectives(h.program);
  EXPECT_EQ(s.asynchronous, (std::vector<bool>{false, false, true}));
  EXPECT_EQ(s.numAsynchronous(), 1u);

  Hand one;
  one.program.gridShape = {};
  a = one.arena(64, 0), b = one.arena(64, 256);
  one.collective("shard.all_reduce", a, b, {});
  EXPECT_EQ(scheduleCollectives(one.program).numAsynchronous(), 0u);
}

TEST(CollectiveSchedule, AnOrderedQueueNeedsNoWaitBetweenCollectives) {
  // Bucketed gradients: the second all-reduce reads the first one's result
  // and both go over the same group; the queue runs them in order.
  Hand h;
  int32_t g0 = h.arena(64, 0), r0 = h.arena(64, 256), r1 = h.arena(64, 512);
  int32_t x = h.arena(64, 768), g2 = h.arena(64, 1024), r2 = h.arena(64, 1280);
  h.collective("shard.all_reduce", g0, r0, {0}); // 0
  h.collective("shard.all_reduce", r0, r1, {0}); // 1: reads 0's result
  h.collective("shard.all_gather", g2, r2, {1}); // 2: another group
  h.compute({x}, {x});                           // 3
  h.compute({r1}, {x});                          // 4
  CollectiveSchedule ordered = scheduleCollectives(h.program);
  EXPECT_EQ(ordered.waitPoint[0], 5u); // nothing after 0 touches r0 but 1
  EXPECT_EQ(ordered.waitPoint[1], 4u);
  EXPECT_EQ(ordered.waitPoint[2], 5u);
  EXPECT_EQ(ordered.waitAtEnd, (std::vector<size_t>{0, 2}));

  CollectiveScheduleOptions unordered;
  unordered.orderedQueue = false;
  unordered.oneAtATimePerGroup = false;
  CollectiveSchedule u = scheduleCollectives(h.program, unordered);
  EXPECT_EQ(u.waitPoint[0], 1u); // 1 reads its result
  EXPECT_EQ(u.waitPoint[1], 4u);
  EXPECT_EQ(u.waitPoint[2], 5u);
}

TEST(CollectiveSchedule, OneCollectiveAtATimePerGroupWithoutAnOrderedQueue) {
  Hand h;
  int32_t a = h.arena(64, 0), b = h.arena(64, 256);
  int32_t c = h.arena(64, 512), d = h.arena(64, 768);
  int32_t e = h.arena(64, 1024), f = h.arena(64, 1280);
  h.collective("shard.all_reduce", a, b, {0}); // 0
  h.collective("shard.all_reduce", c, d, {1}); // 1: other group
  h.collective("shard.all_gather", e, f, {0}); // 2: same group as 0
  CollectiveScheduleOptions options;
  options.orderedQueue = false;
  options.oneAtATimePerGroup = true;
  CollectiveSchedule s = scheduleCollectives(h.program, options);
  EXPECT_EQ(s.waitPoint[0], 2u);
  EXPECT_EQ(s.waitPoint[1], 3u);
  EXPECT_EQ(s.waitPoint[2], 3u);
  EXPECT_EQ(s.waitBefore[2], std::vector<size_t>{0});
  EXPECT_EQ(s.waitAtEnd, (std::vector<size_t>{1, 2}));
  options.oneAtATimePerGroup = false;
  EXPECT_EQ(scheduleCollectives(h.program, options).waitPoint[0], 3u);
}

TEST(CollectiveSchedule, SeveralCollectivesCanEndAtOneInstruction) {
  Hand h;
  int32_t a = h.arena(64, 0), b = h.arena(64, 256);
  int32_t c = h.arena(64, 512), d = h.arena(64, 768), o = h.arena(64, 1024);
  h.collective("shard.all_reduce", a, b); // 0
  h.collective("shard.all_reduce", c, d); // 1
  h.compute({b, d}, {o});                 // 2
  CollectiveSchedule s = scheduleCollectives(h.program);
  EXPECT_EQ(s.waitBefore[2], (std::vector<size_t>{0, 1}));
}

TEST(CollectiveSchedule, TheStepEndsBeforeTheEntryPoints) {
  // Instructions from `end` on (a decoder's entry points after the
  // training step) are never asynchronous, and nothing after the step's end
  // is a wait point: the step waits for what is left at its end.
  Hand h;
  int32_t a = h.arena(64, 0), b = h.arena(64, 256), o = h.arena(64, 512);
  h.collective("shard.all_reduce", a, b); // 0
  h.compute({a}, {o});                    // 1: the step's last instruction
  h.compute({b}, {o});                    // 2: an entry point reads b
  h.collective("shard.all_reduce", o, a); // 3: an entry point's collective
  CollectiveSchedule s = scheduleCollectives(h.program, {}, 2);
  EXPECT_EQ(s.asynchronous, (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ(s.waitPoint[0], 2u);
  EXPECT_EQ(s.waitAtEnd, std::vector<size_t>{0});
  EXPECT_EQ(s.waitBefore[2], none());
  // Without an end the reader of b is the wait point.
  EXPECT_EQ(scheduleCollectives(h.program).waitPoint[0], 2u);
  EXPECT_EQ(scheduleCollectives(h.program).waitBefore[2],
            std::vector<size_t>{0});
}

//===----------------------------------------------------------------------===//
// The host queue
//===----------------------------------------------------------------------===//

TEST(HostCollectiveQueue, RunsInOrderOffTheCallingThread) {
  std::unique_ptr<CollectiveQueue> queue = makeHostCollectiveQueue();
  std::vector<int> order;
  std::atomic<bool> release{false};
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<bool> otherThread{true};
  ASSERT_TRUE(queue
                  ->start(3,
                          [&] {
                            while (!release)
                              std::this_thread::yield();
                            otherThread = otherThread &&
                                          std::this_thread::get_id() != caller;
                            order.push_back(3);
                            return Status::success();
                          })
                  .ok());
  ASSERT_TRUE(queue
                  ->start(7,
                          [&] {
                            order.push_back(7);
                            return Status::success();
                          })
                  .ok());
  // The first collective is still blocked: start() did not wait for it.
  release = true;
  EXPECT_TRUE(queue->wait(7).ok());
  EXPECT_EQ(order, (std::vector<int>{3, 7}));
  EXPECT_TRUE(queue->wait(3).ok());
  EXPECT_TRUE(otherThread);
  EXPECT_TRUE(queue->drain().ok());
}

TEST(HostCollectiveQueue, AFailureIsReportedAndWhatFollowsDoesNotRun) {
  std::unique_ptr<CollectiveQueue> queue = makeHostCollectiveQueue();
  bool ranAfter = false;
  ASSERT_TRUE(queue->start(1, [] { return Status::success(); }).ok());
  ASSERT_TRUE(queue
                  ->start(2,
                          [] {
                            return Status(StatusCode::Unavailable,
                                          "all_reduce on the group over axes "
                                          "{dp} (rank 1): peer gone");
                          })
                  .ok());
  ASSERT_TRUE(queue
                  ->start(3,
                          [&] {
                            ranAfter = true;
                            return Status::success();
                          })
                  .ok());
  EXPECT_TRUE(queue->wait(1).ok());
  Status third = queue->wait(3);
  EXPECT_FALSE(third.ok());
  EXPECT_NE(third.message().find("peer gone"), std::string::npos)
      << third.message();
  EXPECT_FALSE(ranAfter);
  Status drained = queue->drain(); // 2 was never waited for
  EXPECT_EQ(drained.code(), StatusCode::Unavailable);
  EXPECT_NE(drained.message().find("(rank 1)"), std::string::npos);
  // Usable again after the drain, as the next step needs it.
  ASSERT_TRUE(queue->start(1, [] { return Status::success(); }).ok());
  EXPECT_TRUE(queue->wait(1).ok());
  EXPECT_TRUE(queue->drain().ok());
}

TEST(HostCollectiveQueue, MisuseIsAnError) {
  std::unique_ptr<CollectiveQueue> queue = makeHostCollectiveQueue();
  EXPECT_EQ(queue->wait(5).code(), StatusCode::Internal);
  ASSERT_TRUE(queue->start(5, [] { return Status::success(); }).ok());
  EXPECT_EQ(queue->start(5, [] { return Status::success(); }).code(),
            StatusCode::Internal);
  EXPECT_TRUE(queue->drain().ok());
}

TEST(HostCollectiveQueue, TheDestructorWaitsForStartedWork) {
  std::atomic<bool> ran{false};
  {
    std::unique_ptr<CollectiveQueue> queue = makeHostCollectiveQueue();
    ASSERT_TRUE(queue
                    ->start(0,
                            [&] {
                              std::this_thread::sleep_for(
                                  std::chrono::milliseconds(20));
                              ran = true;
                              return Status::success();
                            })
                    .ok());
  }
  EXPECT_TRUE(ran);
}

//===----------------------------------------------------------------------===//
// The executor with overlap on a stand-in grid
//===----------------------------------------------------------------------===//

/// A grid dp=2 x ep=1 x tp=1 seen from rank 0, without MPI: the group over
/// dp is a communicator whose all-reduce doubles the data (its peer holds
/// the same values) but first waits, up to `patience` seconds, until the
/// instruction after it has started (it asks for the ep group: a
/// collective over a group of one does); the ep and tp groups have one
/// rank.
class StandInGrid final : public comm::GridCommunicators {
public:
  class DpGroup final : public comm::Communicator {
  public:
    explicit DpGroup(StandInGrid &grid) : grid_(grid) {}
    int rank() const override { return 0; }
    int size() const override { return 2; }
    Status allReduce(void *data, int64_t count, comm::ElementType,
                     comm::ReduceOp) override {
      grid_.collectiveThread = std::this_thread::get_id();
      auto deadline = std::chrono::steady_clock::now() +
                      std::chrono::duration<double>(grid_.patience);
      while (grid_.epRequests.load() < grid_.epRequestsAfterNext &&
             std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      grid_.sawNextInstruction =
          grid_.epRequests.load() >= grid_.epRequestsAfterNext;
      float *values = static_cast<float *>(data);
      for (int64_t i = 0; i < count; ++i)
        values[i] *= 2;
      ++stats_.calls[static_cast<int>(comm::CollectiveKind::AllReduce)];
      return Status::success();
    }
    Status allGather(const void *, void *, int64_t,
                     comm::ElementType) override {
      return unimplemented("stand-in");
    }
    Status reduceScatter(const void *, void *, int64_t, comm::ElementType,
                         comm::ReduceOp) override {
      return unimplemented("stand-in");
    }
    Status allToAll(const void *, void *, int64_t, comm::ElementType) override {
      return unimplemented("stand-in");
    }
    Status barrier() override { return Status::success(); }

  private:
    StandInGrid &grid_;
  };

  StandInGrid() : dp_(*this), one_(comm::makeSingleRankCommunicator()) {
    shape_ = {2, 1, 1};
    coords_ = {0, 0, 0};
  }
  int worldRank() const override { return 0; }
  int worldSize() const override { return 2; }
  comm::Communicator &world() override { return dp_; }
  Expected<comm::Communicator *> group(const std::vector<int> &axes) override {
    if (axes == std::vector<int>{0})
      return static_cast<comm::Communicator *>(&dp_);
    if (axes == std::vector<int>{1}) {
      ++epRequests;
      return one_.get();
    }
    return invalidArgument("the stand-in grid has no such group");
  }

  std::atomic<int> epRequests{0};
  int epRequestsAfterNext = 0;
  double patience = 0;
  bool sawNextInstruction = false;
  std::thread::id collectiveThread;

private:
  DpGroup dp_;
  std::unique_ptr<comm::Communicator> one_;
};

TEST(ExecutorOverlap, TheNextInstructionRunsWhileACollectiveIsInFlight) {
  Program program;
  program.gridShape = {2, 1, 1};
  auto add = [&](BufferKind kind, int64_t offset) {
    Buffer b;
    b.type = {DType::F32, {4}};
    b.kind = kind;
    b.offset = offset;
    program.buffers.push_back(b);
    return static_cast<int32_t>(program.buffers.size() - 1);
  };
  int32_t a = add(BufferKind::Persistent, 0);
  int32_t out = add(BufferKind::Persistent, 64);
  int32_t x = add(BufferKind::Arena, 0), r = add(BufferKind::Arena, 64);
  int32_t y = add(BufferKind::Arena, 128);
  program.persistentBytes = 128;
  program.arenaBytes = 192;
  auto instruction = [&](const char *kernel, std::vector<int32_t> operands,
                         int32_t result, std::vector<int> axes = {}) {
    Instruction inst;
    inst.kernel = kernel;
    inst.operands = std::move(operands);
    inst.results = {result};
    inst.location = "test";
    if (!axes.empty())
      inst.collective = CollectiveInfo{axes, Reduction::Sum, -1, -1};
    program.instructions.push_back(inst);
  };
  instruction("moe.add", {a, a}, x);            // 0: x = 2a
  instruction("shard.all_reduce", {x}, r, {0}); // 1: r = 4a (dp)
  instruction("shard.all_reduce", {a}, y, {1}); // 2: y = a (ep: copy)
  instruction("moe.add", {r, y}, out);          // 3: waits for 1
  for (bool overlap : {true, false}) {
    SCOPED_TRACE(overlap ? "overlap on" : "overlap off");
    auto executor = Executor::create(program);
    ASSERT_TRUE(executor.ok()) << executor.status().toString();
    EXPECT_EQ((*executor)->collectiveSchedule().waitPoint[1], 3u);
    (*executor)->setCollectiveOverlap(overlap);
    float values[4] = {1, 2, 3, 4};
    ASSERT_TRUE((*executor)->writeBuffer(a, values, sizeof(values)).ok());
    StandInGrid grid;
    // With overlap the ep group is asked for once before the step starts
    // (every group is made before the queue runs) and once by instruction
    // 2; without, only by instruction 2, which then cannot start before
    // the all-reduce returns: it waits in vain, briefly.
    grid.epRequestsAfterNext = overlap ? 2 : 1;
    grid.patience = overlap ? 10.0 : 0.2;
    RunContext context;
    context.grid = &grid;
    Status status = (*executor)->run(context);
    ASSERT_TRUE(status.ok()) << status.toString();
    EXPECT_EQ((*executor)->lastRunOverlapped(), overlap);
    EXPECT_EQ(grid.sawNextInstruction, overlap);
    EXPECT_EQ(grid.collectiveThread != std::this_thread::get_id(), overlap);
    float result[4] = {};
    ASSERT_TRUE((*executor)->readBuffer(out, result, sizeof(result)).ok());
    for (int i = 0; i < 4; ++i)
      EXPECT_EQ(result[i], 5 * values[i]) << i;
  }
}

//===----------------------------------------------------------------------===//
// The offload's host work
//===----------------------------------------------------------------------===//

/// One offloaded update, as moe-offload and moe-stream-gradients compile
/// it (N elements): the gradient is made in the arena and copied to its
/// host buffer, whose arena bytes the next instruction reuses; AdamW
/// updates the host master and moments; the master is rounded into its
/// bf16 device copy, which the device then reads.
struct OffloadedUpdate {
  static constexpr int64_t N = 4096;
  Hand h;
  int32_t x, z, out, lr, scale, step, copy; // persistent
  int32_t grad, reuse, wide;                // arena
  int32_t hostGrad, master, m, v;           // host
  OffloadedUpdate() {
    h.program.gridShape = {1, 1, 1};
    const int64_t B = N * 4;
    x = h.persistent(N, 0);
    z = h.persistent(N, B);
    out = h.persistent(N, 2 * B);
    lr = h.buffer(1, BufferKind::Persistent, 3 * B);
    h.program.buffers[lr].type.shape = {};
    scale = h.buffer(1, BufferKind::Persistent, 3 * B + 64);
    h.program.buffers[scale].type.shape = {};
    step = h.buffer(1, BufferKind::Persistent, 3 * B + 128, DType::I64);
    h.program.buffers[step].type.shape = {};
    copy = h.buffer(N, BufferKind::Persistent, 3 * B + 192, DType::BF16);
    h.program.persistentBytes = 3 * B + 192 + N * 2;
    grad = h.arena(N, 0);
    reuse = h.arena(N, 0); // the gradient's bytes, once it is on the host
    wide = h.arena(N, B);
    h.program.arenaBytes = 2 * B;
    hostGrad = h.host(N, 0);
    master = h.host(N, B);
    m = h.host(N, 2 * B);
    v = h.host(N, 3 * B);
    h.program.hostBytes = 4 * B;
    h.op("moe.add", {x, x}, {grad});                             // 0
    h.op("moe.to_host", {grad, hostGrad}, {hostGrad});           // 1
    h.op("moe.add", {z, z}, {reuse});                            // 2
    h.op("moe.adamw", {master, hostGrad, m, v, lr, scale, step}, // 3
         {master, m, v},
         {{"beta1", 0.9},
          {"beta2", 0.98},
          {"epsilon", 1e-8},
          {"weight_decay", 0.01}});
    h.op("moe.convert", {master}, {copy}); // 4
    h.op("moe.convert", {copy}, {wide});   // 5
    h.op("moe.add", {wide, reuse}, {out}); // 6
  }
};

TEST(HostWorkSchedule, WaitedForWhereTheDeviceNeedsItsBytes) {
  OffloadedUpdate u;
  const CollectiveSchedule s = scheduleHostWork(u.h.program);
  EXPECT_EQ(s.asynchronous,
            (std::vector<bool>{false, true, false, true, true, false, false}));
  // The gradient's arena bytes are written again by instruction 2.
  EXPECT_EQ(s.waitPoint[1], 2u);
  // AdamW reads the host gradient after it on the same queue, and nothing
  // on the device reads what AdamW writes (host memory): end of the step.
  EXPECT_EQ(s.waitPoint[3], 7u);
  // The device copy is read by instruction 5.
  EXPECT_EQ(s.waitPoint[4], 5u);
  EXPECT_EQ(s.waitBefore[2], std::vector<size_t>{1});
  EXPECT_EQ(s.waitBefore[5], std::vector<size_t>{4});
  EXPECT_EQ(s.waitAtEnd, std::vector<size_t>{3});
  // Collectives are scheduled on their own: none here.
  EXPECT_EQ(scheduleCollectives(u.h.program).numAsynchronous(), 0u);
  EXPECT_TRUE(touchesHostMemory(u.h.program.instructions[1], u.h.program));
  EXPECT_FALSE(touchesHostMemory(u.h.program.instructions[5], u.h.program));
}

TEST(HostWorkSchedule, AProgramWithoutHostMemoryHasNone) {
  Hand h;
  int32_t a = h.arena(4, 0), b = h.arena(4, 64);
  h.compute({a}, {b});
  h.collective("shard.all_reduce", b, a);
  EXPECT_EQ(scheduleHostWork(h.program).numAsynchronous(), 0u);
}

/// Runs two steps of the update (the gradient changes with the step) and
/// returns master, moments and the device result, bit for bit.
std::vector<std::vector<uint32_t>> runOffloadedUpdate(bool overlap,
                                                      bool &overlapped) {
  OffloadedUpdate u;
  auto made = Executor::create(u.h.program);
  EXPECT_TRUE(made.ok()) << made.status().toString();
  if (!made.ok())
    return {};
  Executor &e = **made;
  e.setHostWorkOverlap(overlap);
  const size_t n = static_cast<size_t>(OffloadedUpdate::N);
  std::vector<float> x(n), z(n), master(n);
  for (size_t i = 0; i < n; ++i) {
    x[i] = std::sin(0.37f * static_cast<float>(i)) * 0.01f;
    z[i] = std::cos(0.11f * static_cast<float>(i));
    master[i] = 0.5f - static_cast<float>(i % 97) / 97.0f;
  }
  EXPECT_TRUE(e.writeBuffer(u.z, z.data(), n * 4).ok());
  EXPECT_TRUE(e.writeBuffer(u.master, master.data(), n * 4).ok());
  const float lr = 1e-3f, scale = 1.0f;
  EXPECT_TRUE(e.writeBuffer(u.lr, &lr, 4).ok());
  EXPECT_TRUE(e.writeBuffer(u.scale, &scale, 4).ok());
  for (int64_t step = 1; step <= 2; ++step) {
    for (float &value : x)
      value *= -1.5f;
    EXPECT_TRUE(e.writeBuffer(u.x, x.data(), n * 4).ok());
    EXPECT_TRUE(e.writeBuffer(u.step, &step, 8).ok());
    Status ran = e.run(RunContext());
    EXPECT_TRUE(ran.ok()) << ran.toString();
    overlapped = e.lastRunOverlappedHostWork();
  }
  std::vector<std::vector<uint32_t>> bits;
  for (int32_t id : {u.master, u.m, u.v, u.out}) {
    std::vector<uint32_t> values(n);
    EXPECT_TRUE(e.readBuffer(id, values.data(), n * 4).ok());
    bits.push_back(values);
  }
  return bits;
}

TEST(HostWorkOverlap, TheSameBitsAsInProgramOrder) {
  bool overlapped = false;
  const auto sequential = runOffloadedUpdate(false, overlapped);
  EXPECT_FALSE(overlapped);
  ASSERT_EQ(sequential.size(), 4u);
  // The update happened: the master moved, the moments are not zero.
  EXPECT_NE(sequential[0][0], sequential[0][1]);
  EXPECT_NE(sequential[1][5], 0u);
  for (int round = 0; round < 20; ++round) {
    const auto queued = runOffloadedUpdate(true, overlapped);
    EXPECT_TRUE(overlapped);
    ASSERT_EQ(queued, sequential) << "round " << round;
  }
}

TEST(HostWorkSchedule, OptimizerScalarsAreSteadyUnlessWrittenBetweenUpdates) {
  OffloadedUpdate u;
  EXPECT_TRUE(optimizerScalarsSteady(u.h.program));
  // A second update, and between the two an instruction that writes the
  // learning rate: each update must read its own.
  Instruction second = u.h.program.instructions[3];
  u.h.op("moe.add", {u.lr, u.lr}, {u.lr});
  u.h.program.instructions.push_back(second);
  EXPECT_FALSE(optimizerScalarsSteady(u.h.program));
  // Written after the last update: steady again.
  Hand none;
  EXPECT_FALSE(optimizerScalarsSteady(none.program)); // no update at all
  OffloadedUpdate after;
  after.h.op("moe.add", {after.lr, after.lr}, {after.lr});
  EXPECT_TRUE(optimizerScalarsSteady(after.h.program));
}

} // namespace
