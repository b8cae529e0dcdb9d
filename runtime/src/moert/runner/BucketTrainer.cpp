//===- BucketTrainer.cpp - Training on length buckets ---------------------===//
#include "moert/runner/BucketTrainer.h"

#include "moert/runner/StepIO.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>

namespace moert {
namespace runner {

namespace fb = plan::fb;

namespace {

const char *kindName(exec::BufferKind kind) {
  switch (kind) {
  case exec::BufferKind::Arena:
    return "arena";
  case exec::BufferKind::Persistent:
    return "persistent";
  case exec::BufferKind::Constant:
    return "constant";
  case exec::BufferKind::Host:
    return "host";
  }
  return "?";
}

std::string formatSpec(const ShardSpec &spec) {
  std::ostringstream out;
  out << "[";
  for (size_t d = 0; d < spec.size(); ++d) {
    out << (d ? ", " : "") << "[";
    for (size_t a = 0; a < spec[d].size(); ++a)
      out << (a ? ", " : "") << spec[d][a];
    out << "]";
  }
  out << "]";
  return out.str();
}

/// The shortest text that reads back as `value`.
std::string number(double value) {
  std::string text;
  for (int digits = 6; digits <= 17; ++digits) {
    std::ostringstream out;
    out.precision(digits);
    out << value;
    text = out.str();
    if (std::strtod(text.c_str(), nullptr) == value)
      break;
  }
  return text;
}

/// The buffers of the persistent state `program` (of `plan`) keeps across
/// steps, in buffer order: every persistent or host buffer except the batch
/// inputs and the inputs and outputs of the plan's further programs that
/// the training step does not touch, which are written before every use
/// (so: parameters, AdamW moments, 16-bit device copies of offloaded
/// parameters, ...).
std::vector<int32_t> stateBuffers(const fb::Plan &plan,
                                  const exec::Program &program) {
  std::vector<bool> inStep(program.buffers.size(), false);
  for (size_t i = 0; i < program.stepEnd() && i < program.instructions.size();
       ++i)
    for (const std::vector<int32_t> *ids :
         {&program.instructions[i].operands, &program.instructions[i].results})
      for (int32_t id : *ids)
        if (id >= 0 && static_cast<size_t>(id) < inStep.size())
          inStep[static_cast<size_t>(id)] = true;
  std::vector<bool> perUse(program.buffers.size(), false);
  auto mark = [&](int64_t id) {
    if (id >= 0 && static_cast<size_t>(id) < perUse.size())
      perUse[static_cast<size_t>(id)] = true;
  };
  auto markOutsideStep = [&](int64_t id) {
    if (id >= 0 && static_cast<size_t>(id) < perUse.size() &&
        !inStep[static_cast<size_t>(id)])
      perUse[static_cast<size_t>(id)] = true;
  };
  if (plan.batch_inputs())
    for (const fb::BatchInput *input : *plan.batch_inputs())
      mark(input->buffer());
  if (plan.programs())
    for (const fb::Program *function : *plan.programs()) {
      if (function->inputs())
        for (int32_t id : *function->inputs())
          markOutsideStep(id);
      if (function->outputs())
        for (int32_t id : *function->outputs())
          markOutsideStep(id);
    }
  std::vector<int32_t> ids;
  for (size_t id = 0; id < program.buffers.size(); ++id) {
    const exec::BufferKind kind = program.buffers[id].kind;
    if ((kind == exec::BufferKind::Persistent ||
         kind == exec::BufferKind::Host) &&
        !perUse[id])
      ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

/// A view of the shared source for one bucket's trainer.
class BucketView final : public BatchSource {
public:
  BucketView(BatchSource &source, size_t bucket)
      : source_(source), bucket_(bucket) {}
  Expected<SeqBatch> batch(uint64_t seed, int64_t step) override {
    return source_.bucketBatch(bucket_, seed, step);
  }
  std::string describe() const override { return source_.describe(); }

private:
  BatchSource &source_;
  size_t bucket_;
};

} // namespace

Status checkSharedState(const PlanFile &first,
                        const exec::Program &firstProgram,
                        const PlanFile &other,
                        const exec::Program &otherProgram) {
  const fb::Plan &a = first.plan.plan();
  const fb::Plan &b = other.plan.plan();
  auto refuse = [&](const std::string &what, const std::string &expected,
                    const std::string &found) {
    return failedPrecondition(
        "bucket plan '" + other.path +
        "' cannot share the persistent state "
        "of '" +
        first.path + "': " + what + " is " + found + ", expected " + expected +
        " (compile every bucket from the same model and "
        "training options, changing only batch_size, src_len and tgt_len)");
  };
  // Two plans' buffers of one piece of the state: name, type, kind and
  // offset equal (`what` names the piece).
  auto sameBuffer = [&](const exec::Buffer &ba, const exec::Buffer &bb,
                        const std::string &what) -> Status {
    if (ba.name != bb.name)
      return refuse("the name of " + what, "'" + ba.name + "'",
                    "'" + bb.name + "'");
    const std::string buffer = "persistent buffer '" + ba.name + "'";
    if (ba.type.dtype != bb.type.dtype || ba.type.shape != bb.type.shape)
      return refuse("the type of " + buffer, ba.type.str(), bb.type.str());
    if (ba.kind != bb.kind)
      return refuse("the kind of " + buffer, kindName(ba.kind),
                    kindName(bb.kind));
    if (ba.offset != bb.offset)
      return refuse("the offset of " + buffer, std::to_string(ba.offset),
                    std::to_string(bb.offset));
    return Status::success();
  };
  auto name = [](const fb::Plan &p) {
    return p.model_name() ? p.model_name()->str() : std::string();
  };
  if (name(a) != name(b))
    return refuse("the model", "'" + name(a) + "'", "'" + name(b) + "'");
  if (gridShapeOf(a) != gridShapeOf(b))
    return refuse("the device grid", describeGrid(a), describeGrid(b));
  const int zeroA = a.grid() ? a.grid()->zero_stage() : 0;
  const int zeroB = b.grid() ? b.grid()->zero_stage() : 0;
  if (zeroA != zeroB)
    return refuse("the ZeRO stage", std::to_string(zeroA),
                  std::to_string(zeroB));

  // The optimizer and schedule, where the plans record them.
  if ((a.training() == nullptr) != (b.training() == nullptr))
    return refuse("the training configuration",
                  a.training() ? "present" : "absent",
                  b.training() ? "present" : "absent");
  if (a.training()) {
    const fb::TrainingConfig &ta = *a.training(), &tb = *b.training();
    const std::pair<const char *, std::pair<double, double>> fields[] = {
        {"learning_rate", {ta.learning_rate(), tb.learning_rate()}},
        {"beta1", {ta.beta1(), tb.beta1()}},
        {"beta2", {ta.beta2(), tb.beta2()}},
        {"epsilon", {ta.epsilon(), tb.epsilon()}},
        {"weight_decay", {ta.weight_decay(), tb.weight_decay()}},
        {"warmup_steps",
         {static_cast<double>(ta.warmup_steps()),
          static_cast<double>(tb.warmup_steps())}},
        {"clip_norm", {ta.clip_norm(), tb.clip_norm()}},
        {"aux_loss_coefficient",
         {ta.aux_loss_coefficient(), tb.aux_loss_coefficient()}},
        {"steps",
         {static_cast<double>(ta.steps()), static_cast<double>(tb.steps())}},
    };
    for (const auto &[field, values] : fields)
      if (values.first != values.second)
        return refuse(std::string("the training option ") + field,
                      number(values.first), number(values.second));
  }

  // The parameters: the same table, and every state buffer the same.
  const size_t countA = a.parameters() ? a.parameters()->size() : 0;
  const size_t countB = b.parameters() ? b.parameters()->size() : 0;
  if (countA != countB)
    return refuse("the number of parameters", std::to_string(countA),
                  std::to_string(countB));
  for (size_t i = 0; i < countA; ++i) {
    const fb::Parameter &pa = *a.parameters()->Get(static_cast<uint32_t>(i));
    const fb::Parameter &pb = *b.parameters()->Get(static_cast<uint32_t>(i));
    const std::string where = "parameter #" + std::to_string(i);
    if (pa.name()->str() != pb.name()->str())
      return refuse("the name of " + where, "'" + pa.name()->str() + "'",
                    "'" + pb.name()->str() + "'");
    const std::string param = "parameter '" + pa.name()->str() + "'";
    auto shape = [](const fb::Parameter &p) {
      return p.shape()
                 ? std::vector<int64_t>(p.shape()->begin(), p.shape()->end())
                 : std::vector<int64_t>();
    };
    if (shape(pa) != shape(pb))
      return refuse("the shape of " + param, plan::formatShape(shape(pa)),
                    plan::formatShape(shape(pb)));
    if (pa.dtype() != pb.dtype())
      return refuse("the element type of " + param,
                    fb::EnumNameDType(pa.dtype()),
                    fb::EnumNameDType(pb.dtype()));
    if (shardSpecOf(pa.sharding()) != shardSpecOf(pb.sharding()))
      return refuse("the sharding of " + param,
                    formatSpec(shardSpecOf(pa.sharding())),
                    formatSpec(shardSpecOf(pb.sharding())));
    if (shardSpecOf(pa.state_sharding()) != shardSpecOf(pb.state_sharding()))
      return refuse("the optimizer state sharding of " + param,
                    formatSpec(shardSpecOf(pa.state_sharding())),
                    formatSpec(shardSpecOf(pb.state_sharding())));
    if (pa.init() != pb.init() || pa.init_scale() != pb.init_scale())
      return refuse("the initializer of " + param,
                    std::string(fb::EnumNameInitKind(pa.init())) + " x " +
                        number(pa.init_scale()),
                    std::string(fb::EnumNameInitKind(pb.init())) + " x " +
                        number(pb.init_scale()));
    if (pa.group() != pb.group())
      return refuse("the group of " + param, fb::EnumNameParamGroup(pa.group()),
                    fb::EnumNameParamGroup(pb.group()));
  }
  // Then their buffers, laid out alike.
  for (size_t i = 0; i < countA; ++i) {
    const fb::Parameter &pa = *a.parameters()->Get(static_cast<uint32_t>(i));
    const fb::Parameter &pb = *b.parameters()->Get(static_cast<uint32_t>(i));
    const std::string param = "parameter '" + pa.name()->str() + "'";
    const std::pair<const char *, std::pair<int32_t, int32_t>> roles[] = {
        {"value", {pa.buffer(), pb.buffer()}},
        {"exp_avg", {pa.exp_avg_buffer(), pb.exp_avg_buffer()}},
        {"exp_avg_sq", {pa.exp_avg_sq_buffer(), pb.exp_avg_sq_buffer()}},
    };
    for (const auto &[role, ids] : roles) {
      const std::string what =
          "the " + std::string(role) + " buffer of " + param;
      if ((ids.first < 0) != (ids.second < 0))
        return refuse(what, ids.first < 0 ? "absent" : "present",
                      ids.second < 0 ? "absent" : "present");
      if (ids.first < 0)
        continue;
      MOERT_RETURN_IF_ERROR(sameBuffer(firstProgram.buffers[ids.first],
                                       otherProgram.buffers[ids.second], what));
    }
  }

  // Every buffer of the state the steps carry (the parameters' above and
  // any other, such as 16-bit device copies of offloaded parameters): the
  // same, in the same order.
  const std::vector<int32_t> stateA = stateBuffers(a, firstProgram);
  const std::vector<int32_t> stateB = stateBuffers(b, otherProgram);
  for (size_t k = 0; k < std::max(stateA.size(), stateB.size()); ++k) {
    if (k >= stateA.size() || k >= stateB.size())
      return refuse("the number of persistent state buffers",
                    std::to_string(stateA.size()),
                    std::to_string(stateB.size()));
    MOERT_RETURN_IF_ERROR(sameBuffer(
        firstProgram.buffers[stateA[k]], otherProgram.buffers[stateB[k]],
        "persistent state buffer #" + std::to_string(k)));
  }

  // The other persistent buffers of either plan (batch inputs, inputs and
  // outputs of its further programs) are rewritten before every use, but
  // must not lie on the shared state.
  struct Range {
    exec::BufferKind kind;
    int64_t begin, end;
    std::string name;
  };
  std::vector<Range> state;
  for (int32_t id : stateA) {
    const exec::Buffer &buffer = firstProgram.buffers[id];
    state.push_back({buffer.kind, buffer.offset,
                     buffer.offset + buffer.type.byteSize(), buffer.name});
  }
  for (const auto *program : {&firstProgram, &otherProgram}) {
    const std::vector<int32_t> &own =
        program == &firstProgram ? stateA : stateB;
    for (size_t id = 0; id < program->buffers.size(); ++id) {
      const exec::Buffer &buffer = program->buffers[id];
      if ((buffer.kind != exec::BufferKind::Persistent &&
           buffer.kind != exec::BufferKind::Host) ||
          std::find(own.begin(), own.end(), static_cast<int32_t>(id)) !=
              own.end())
        continue;
      const int64_t end = buffer.offset + buffer.type.byteSize();
      for (const Range &range : state)
        if (range.kind == buffer.kind && buffer.offset < range.end &&
            range.begin < end)
          return failedPrecondition(
              "bucket plan '" + other.path +
              "' cannot share the "
              "persistent state of '" +
              first.path + "': " + kindName(buffer.kind) + " buffer '" +
              buffer.name + "' of '" +
              (program == &firstProgram ? first.path : other.path) +
              "' (bytes " + std::to_string(buffer.offset) + ".." +
              std::to_string(end) + ") overlaps the state buffer '" +
              range.name + "' (bytes " + std::to_string(range.begin) + ".." +
              std::to_string(range.end) + ")");
    }
  }
  return Status::success();
}

Expected<std::unique_ptr<BucketTrainer>>
BucketTrainer::create(std::vector<PlanFile> plans, uint64_t seed,
                      int64_t alphabet, comm::GridCommunicators *grid,
                      hal::Device *device, bool offloadOptimizerState) {
  if (plans.empty())
    return invalidArgument("no plans given for the length buckets");
  std::unique_ptr<BucketTrainer> buckets(new BucketTrainer());
  // Everything is checked before anything is allocated.
  std::vector<exec::Program> programs;
  TrainerMemory owner;
  for (const PlanFile &file : plans) {
    Expected<exec::Program> program =
        trainerProgram(file.plan.plan(), offloadOptimizerState);
    if (!program.ok())
      return program.takeStatus().withContext(file.path);
    if (batchInputBuffer(file.plan.plan(), "loss_scale") >= 0)
      return unimplemented("'" + file.path +
                           "' has dynamic loss scaling "
                           "(precision=fp16), which length buckets do not "
                           "support yet (the scaler's state would be per "
                           "plan); compile the buckets with bf16 or fp32");
    owner.arenaBytes = std::max(owner.arenaBytes, program->arenaBytes);
    owner.persistentBytes =
        std::max(owner.persistentBytes, program->persistentBytes);
    programs.push_back(std::move(*program));
  }
  for (size_t b = 1; b < plans.size(); ++b)
    MOERT_RETURN_IF_ERROR(
        checkSharedState(plans[0], programs[0], plans[b], programs[b]));

  for (size_t b = 0; b < plans.size(); ++b) {
    TrainerMemory memory = owner;
    if (b > 0)
      memory = TrainerMemory{buckets->trainers_.front().get(), 0, 0};
    Expected<std::unique_ptr<Trainer>> trainer =
        Trainer::create(std::move(plans[b].plan), seed, alphabet, grid, device,
                        offloadOptimizerState, memory);
    if (!trainer.ok())
      return trainer.takeStatus().withContext(plans[b].path);
    buckets->paths_.push_back(plans[b].path);
    buckets->trainers_.push_back(std::move(*trainer));
  }
  return std::move(buckets);
}

Status BucketTrainer::setBatchSource(std::unique_ptr<BatchSource> source) {
  if (source->numBuckets() != trainers_.size())
    return invalidArgument("the batch source makes " +
                           std::to_string(source->numBuckets()) +
                           " bucket shapes, the trainer has " +
                           std::to_string(trainers_.size()) + " plans");
  source_ = std::move(source);
  for (size_t b = 0; b < trainers_.size(); ++b)
    trainers_[b]->setBatchSource(std::make_unique<BucketView>(*source_, b));
  return Status::success();
}

Expected<StepMetrics> BucketTrainer::runStep(int64_t step) {
  if (!source_)
    return failedPrecondition("length buckets need a batch source that "
                              "picks the bucket of every step (--data)");
  const size_t b = source_->bucketAt(trainers_.front()->seed(), step);
  if (b >= trainers_.size())
    return internalError("the batch source picked bucket " + std::to_string(b) +
                         " of " + std::to_string(trainers_.size()));
  MOERT_ASSIGN_OR_RETURN(StepMetrics metrics, trainers_[b]->runStep(step));
  metrics.bucket = static_cast<int>(b);
  return metrics;
}

} // namespace runner
} // namespace moert
