//===- moe-train.cpp - Train a compiled plan ------------------------------===//
//
//   moe-train demo.moeplan --steps 200 [--seed 1] [--metrics run.jsonl]
//             [--log-every 10] [--alphabet 32] [--comm-stats FILE]
//   mpirun -np 4 moe-train partitioned.moeplan ...
//
// Loads and verifies the plan, initializes the parameters, runs the steps
// on the synthetic reversal task and reports progress (step, loss, tokens/s,
// ETA) and per-step metrics as JSON lines. A plan partitioned for a device
// grid runs as one process per rank under mpirun (the world size must be
// the grid's rank count); rank 0 prints, writes the metrics and the
// checkpoints (logical tensors gathered from every rank).
//
//===----------------------------------------------------------------------===//
#include "moert/checkpoint/AtomicFile.h"
#include "moert/comm/MpiCommunicator.h"
#include "moert/comm/Watchdog.h"
#include "moert/data/MultitaskSource.h"
#include "moert/data/TranslationEval.h"
#include "moert/exec/DeviceCommunicators.h"
#include "moert/hal/Device.h"
#include "moert/runner/BucketTrainer.h"
#include "moert/runner/CommandLine.h"
#include "moert/runner/Trainer.h"

#include <mpi.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <optional>
#include <sstream>
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
  std::string commStats; // per-rank JSON of bytes sent and memory; "{rank}"
  std::string device = "cpu"; // backend the plan runs on
  std::string comm = "auto";  // collectives: auto, mpi or nccl
  bool offloadOptimizer = false; // AdamW moments in host memory
  std::string data;               // encoded multilingual corpus directory
  // Length buckets: further plans of the same model at other batch shapes
  // (the main plan is bucket 0), sharing its persistent state.
  std::vector<std::string> bucketPlans;
  int64_t evalBatches = 0;        // held-out synthetic batches to decode
  int64_t maxNonFinite = 10;      // consecutive non-finite steps before stop
  int64_t lossScalePower = -1;  // fp16 plans: initial scale 2^P (-1: 16)
  int64_t lossScaleWindow = -1; // fp16 plans: clean steps to double (-1: 1000)
  std::string onNonFinite = "stop"; // f32 plans: stop or skip
  uint64_t memoryLimit = 0; // bytes per rank; 0: what the device reports
  int64_t collectiveTimeout = 1800; // seconds a rank waits in a collective
  std::string overlapCollectives = "on"; // collectives beside the compute
  std::string overlapOffload; // host work beside the device's ("": default)
  // Translation evaluation during training (--data runs).
  std::string evalPlan;       // one-process plan of the same model
  int64_t evalEvery = 0;      // 0: after the last step only
  int64_t evalSentences = 50; // first N pairs per direction
  std::string evalLanguages = "all";
  std::string evalDirection = "both";
  std::string evalSplit = "valid";
  std::string evalJson; // JSONL, one line per evaluation
};

const char *kUsage =
    "usage: moe-train <plan.moeplan> [--steps N] [--seed S] "
    "[--metrics FILE.jsonl] [--log-every K] [--alphabet A]\n"
    "                 [--save FILE.safetensors] [--save-every K] "
    "[--resume FILE.safetensors]\n"
    "                 [--comm-stats FILE.json] [--device cpu|cuda] "
    "[--comm auto|mpi|nccl]\n"
    "                 [--offload-optimizer] [--data CORPUS_DIR] "
    "[--eval-batches N]\n"
    "                 [--loss-scale-power P] [--loss-scale-window N] "
    "[--on-nonfinite stop|skip]\n"
    "                 [--max-nonfinite-steps N] [--memory-limit BYTES[K|M|G]] "
    "[--collective-timeout S]\n"
    "                 [--overlap-collectives on|off] [--overlap-offload "
    "on|off] [--bucket-plan PLAN ...]\n"
    "                 [--eval-plan PLAN --eval-json FILE.jsonl [--eval-every "
    "K] [--eval-sentences N]\n"
    "                  [--eval-languages L1,L2|all] [--eval-direction "
    "en-x|x-en|both] [--eval-split valid|test]]\n"
    "  --alphabet A  content tokens of the synthetic reversal task "
    "(default 32; 0 = whole vocabulary)\n"
    "  --resume F    continue from checkpoint F (same plan and --seed) up to "
    "--steps\n"
    "  --comm-stats F  write each rank's bytes sent per collective in one "
    "step and its allocated bytes to F ('{rank}' in F becomes the rank)\n"
    "  --device D    run on the CPU (default) or on a CUDA GPU (under "
    "mpirun: the GPU of the node-local rank)\n"
    "  --comm C      collectives over MPI from host memory (mpi), or over "
    "NCCL on the GPU's stream (nccl: needs --device cuda and libnccl.so.2; "
    "also for a single process); auto (default): nccl for a multi-rank "
    "CUDA job where NCCL loads, else mpi\n"
    "  --data D      train on the multilingual multitask batches of the "
    "encoded corpus D (moe-data corpus/spm/encode) instead of the synthetic "
    "task\n"
    "  --bucket-plan P  with --data, repeatable: batches by token count. P is "
    "the same model compiled at another batch size and source/target "
    "lengths (about the same tokens per batch); the plans, the main plan "
    "first, go from the shortest to the longest and share one copy of the "
    "parameters and optimizer state (refused unless their layouts agree). "
    "Each pair goes to the shortest bucket holding it uncut; each step picks "
    "a bucket with probability proportional to its pairs' sampling weight "
    "over its batch size, from (--seed, step)\n"
    "  --eval-plan P  with --data: every --eval-every K steps and after the "
    "last, translate the first --eval-sentences N (default 50) pairs per "
    "direction of the corpus' --eval-split (default valid) with the current "
    "parameters and log BLEU, chrF2, the copy baseline and the teacher-"
    "forced loss per direction to --eval-json (one line per evaluation). P "
    "is the same model compiled for one process (best with "
    "--moe-training-pipeline=\"decoder=true\": incremental decoding); rank "
    "0 evaluates, with the parameters passed through a checkpoint written "
    "next to the JSONL file, while the other ranks wait\n"
    "  --eval-batches N  after training, decode N held-out batches of the "
    "synthetic task greedily and report exact matches and token accuracy\n"
    "  --max-nonfinite-steps N  with --on-nonfinite skip: stop when the "
    "gradient norm is not finite N steps in a row (default 10)\n"
    "  --offload-optimizer  keep the AdamW moments in host memory and update "
    "on the host (ZeRO-Offload; the same results, less device memory)\n"
    "  --loss-scale-power P, --loss-scale-window N  fp16 plans: dynamic loss "
    "scaling starts at 2^P (default 16) and doubles after N clean steps "
    "(default 1000)\n"
    "  --on-nonfinite P  a step whose loss or gradient norm is NaN or "
    "infinite (plans without loss scaling): stop (default) with an error "
    "naming the step and the first parameter with a non-finite gradient, "
    "or skip (the plan's optimizer leaves parameters and moments unchanged "
    "on a non-finite gradient norm); a checkpoint with non-finite values is "
    "never written\n"
    "  --memory-limit B  refuse to start when the plan's arena and "
    "persistent bytes exceed B per rank (default: the device's available "
    "memory; on the CPU MemAvailable, lowered to the cgroup's headroom)\n"
    "  --collective-timeout S  a rank that waits more than S seconds in one "
    "collective (another rank stopped or hung; MPI in multi-rank jobs, NCCL "
    "on GPUs) ends the job naming the collective, rank and step (default "
    "1800; 0: wait forever)\n"
    "  --overlap-collectives on|off  run the collectives of a multi-rank "
    "job beside the compute (on, default: an MPI communication thread, or a "
    "second CUDA stream for NCCL), each waited for where an instruction "
    "first needs its bytes; off: each in program order before the next "
    "instruction. The results are the same bits either way\n"
    "  --overlap-offload on|off  run an offloaded plan's host work (gradient "
    "copies to the host, the host AdamW, the 16-bit copies of the updated "
    "masters) beside the device's work (CUDA: on by default, a transfer "
    "stream; the CPU: off by default, on runs it on a thread of its own "
    "beside the kernels, which use the same cores); off: in program order. "
    "The results are the same bits either way\n"
    "A plan partitioned for a device grid of N ranks runs under "
    "mpirun -np N.\n";

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
    } else if (arg == "--device") {
      ok = cl.value(options.device);
      if (ok && !hal::parseBackend(options.device).ok())
        ok = cl.error("--device expects cpu or cuda, found '" +
                      options.device + "'");
    } else if (arg == "--eval-batches") {
      ok = cl.integer(1, options.evalBatches);
    } else if (arg == "--max-nonfinite-steps") {
      ok = cl.integer(1, options.maxNonFinite);
    } else if (arg == "--data") {
      ok = cl.value(options.data);
    } else if (arg == "--bucket-plan") {
      std::string path;
      ok = cl.value(path);
      options.bucketPlans.push_back(path);
    } else if (arg == "--offload-optimizer") {
      options.offloadOptimizer = true;
    } else if (arg == "--comm") {
      ok = cl.value(options.comm);
      if (ok && options.comm != "auto" && options.comm != "mpi" &&
          options.comm != "nccl")
        ok = cl.error("--comm expects auto, mpi or nccl, found '" +
                      options.comm + "'");
    } else if (arg == "--comm-stats") {
      ok = cl.value(options.commStats);
    } else if (arg == "--save-every") {
      ok = cl.integer(1, options.saveEvery);
    } else if (arg == "--loss-scale-power") {
      ok = cl.integer(0, options.lossScalePower, 100);
    } else if (arg == "--loss-scale-window") {
      ok = cl.integer(1, options.lossScaleWindow);
    } else if (arg == "--memory-limit") {
      std::string text;
      ok = cl.value(text);
      if (ok) {
        uint64_t scale = 1;
        std::string digits = text;
        if (!digits.empty() && std::strchr("KMG", digits.back())) {
          scale = digits.back() == 'K'   ? uint64_t(1) << 10
                  : digits.back() == 'M' ? uint64_t(1) << 20
                                         : uint64_t(1) << 30;
          digits.pop_back();
        }
        bool valid = !digits.empty() && digits.size() <= 15 &&
                     digits.find_first_not_of("0123456789") ==
                         std::string::npos;
        options.memoryLimit = valid ? std::stoull(digits) * scale : 0;
        if (options.memoryLimit == 0)
          ok = cl.error("--memory-limit expects a byte count > 0 with an "
                        "optional K, M or G suffix, found '" + text + "'");
      }
    } else if (arg == "--eval-plan") {
      ok = cl.value(options.evalPlan);
    } else if (arg == "--eval-every") {
      ok = cl.integer(1, options.evalEvery);
    } else if (arg == "--eval-sentences") {
      ok = cl.integer(1, options.evalSentences);
    } else if (arg == "--eval-languages") {
      ok = cl.value(options.evalLanguages);
    } else if (arg == "--eval-json") {
      ok = cl.value(options.evalJson);
    } else if (arg == "--eval-direction") {
      ok = cl.value(options.evalDirection);
      if (ok && options.evalDirection != "en-x" &&
          options.evalDirection != "x-en" && options.evalDirection != "both")
        ok = cl.error("--eval-direction expects en-x, x-en or both, found '" +
                      options.evalDirection + "'");
    } else if (arg == "--eval-split") {
      ok = cl.value(options.evalSplit);
      if (ok && options.evalSplit != "valid" && options.evalSplit != "test")
        ok = cl.error("--eval-split expects valid or test, found '" +
                      options.evalSplit + "'");
    } else if (arg == "--collective-timeout") {
      ok = cl.integer(0, options.collectiveTimeout);
    } else if (arg == "--overlap-collectives") {
      ok = cl.value(options.overlapCollectives);
      if (ok && options.overlapCollectives != "on" &&
          options.overlapCollectives != "off")
        ok = cl.error("--overlap-collectives expects on or off, found '" +
                      options.overlapCollectives + "'");
    } else if (arg == "--overlap-offload") {
      ok = cl.value(options.overlapOffload);
      if (ok && options.overlapOffload != "on" &&
          options.overlapOffload != "off")
        ok = cl.error("--overlap-offload expects on or off, found '" +
                      options.overlapOffload + "'");
    } else if (arg == "--on-nonfinite") {
      ok = cl.value(options.onNonFinite);
      if (ok && options.onNonFinite != "stop" &&
          options.onNonFinite != "skip")
        ok = cl.error("--on-nonfinite expects stop or skip, found '" +
                      options.onNonFinite + "'");
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
  if (!options.bucketPlans.empty() && options.data.empty())
    return cl.error("--bucket-plan needs --data (the length buckets are "
                    "filled from the corpus)");
  if (!options.bucketPlans.empty() && options.evalBatches > 0)
    return cl.error("--eval-batches decodes the synthetic task; not with "
                    "--bucket-plan");
  const bool evalOption = options.evalEvery > 0 || !options.evalJson.empty() ||
                          !options.evalPlan.empty();
  if (evalOption && (options.evalPlan.empty() || options.evalJson.empty() ||
                     options.data.empty()))
    return cl.error("translation evaluation needs --eval-plan, --eval-json "
                    "and --data together");
  return true;
}

/// Translation scores of the current parameters, logged by rank 0.
struct TranslationEvaluation {
  std::unique_ptr<runner::Trainer> trainer; // the one-process plan
  std::unique_ptr<data::SentencePieceModel> spm;
  data::TranslationEvalOptions options;
};

/// Where the parameters pass from the training plan to the evaluation plan.
std::string evaluationCheckpoint(const std::string &jsonPath) {
  return jsonPath + ".parameters.safetensors";
}

/// One evaluation at `step`: every rank joins the checkpoint (collective),
/// rank 0 (which holds `evaluation`) loads it into the evaluation plan,
/// scores and appends a JSON line; the others go on to the next step.
Status evaluateTranslation(runner::Trainer &trainer,
                           TranslationEvaluation *evaluation,
                           const std::string &jsonPath, int64_t step) {
  const std::string checkpoint = evaluationCheckpoint(jsonPath);
  MOERT_RETURN_IF_ERROR(trainer.saveCheckpoint(checkpoint, step));
  if (!evaluation)
    return Status::success();
  MOERT_RETURN_IF_ERROR(
      evaluation->trainer->loadCheckpoint(checkpoint).status());
  const auto start = std::chrono::steady_clock::now();
  MOERT_ASSIGN_OR_RETURN(std::vector<data::DirectionScore> scores,
                         data::evaluateTranslation(*evaluation->trainer,
                                                   *evaluation->spm,
                                                   evaluation->options));
  std::remove(checkpoint.c_str());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  const data::TranslationSummary all = data::summarize(scores);
  std::ostringstream line;
  line.precision(9);
  line << "{\"step\": " << step << ", \"split\": \""
       << evaluation->options.split << "\", \"rows\": [";
  for (size_t i = 0; i < scores.size(); ++i) {
    line << (i ? ", " : "");
    data::writeDirectionJson(line, scores[i]);
  }
  line << "], \"bleu\": " << all.bleu << ", \"copy_bleu\": " << all.copyBleu
       << ", \"loss\": " << all.loss << ", \"seconds\": " << seconds << "}\n";
  std::ofstream out(jsonPath, std::ios::binary | std::ios::app);
  out << line.str();
  out.flush();
  if (!out)
    return dataLoss("writing the evaluation file '" + jsonPath +
                    "' failed at step " + std::to_string(step) + " (" +
                    std::strerror(errno) + ")");
  std::printf("eval   %6" PRId64 "  BLEU %6.2f (copy %.2f, above it in %" PRId64
              " of %zu directions)  loss %.4f  %s split, %.0f s\n",
              step, all.bleu, all.copyBleu, all.aboveCopy, scores.size(),
              all.loss, evaluation->options.split.c_str(), seconds);
  std::fflush(stdout);
  return Status::success();
}

/// The first parameter (in plan order) whose gradient (or, failing that,
/// value) holds a non-finite element on this rank; "" when none does.
std::string firstNonFinite(const runner::Trainer &trainer, bool gradient) {
  const exec::Executor &executor = trainer.executor();
  const plan::fb::Plan &plan = trainer.plan().plan();
  if (!plan.parameters())
    return "";
  for (const plan::fb::Parameter *param : *plan.parameters()) {
    int32_t id = gradient ? param->grad_buffer() : param->buffer();
    if (id < 0 || size_t(id) >= executor.program().buffers.size() ||
        executor.program().buffers[id].type.dtype != exec::DType::F32)
      continue;
    std::vector<float> values(static_cast<size_t>(
        executor.program().buffers[id].type.numElements()));
    if (!executor.readBuffer(id, values.data(), values.size() * sizeof(float))
             .ok())
      continue;
    for (float value : values)
      if (!std::isfinite(value))
        return param->name()->str();
  }
  return "";
}

/// The error for a step whose loss or gradient norm is not finite: names
/// the step, both values, the first parameter whose gradient is not
/// finite and whether any parameter value became non-finite.
Status nonFiniteStepError(const runner::Trainer &trainer,
                          const runner::StepMetrics &m) {
  auto text = [](float value) {
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%g", value);
    return std::string(buffer);
  };
  std::string message = "step " + std::to_string(m.step) + ": the loss is " +
                        text(m.loss) + " and the gradient norm is " +
                        text(m.gradNorm) + "; ";
  std::string gradient = firstNonFinite(trainer, /*gradient=*/true);
  if (!gradient.empty())
    message += "the first parameter with a non-finite gradient is '" +
               gradient + "'; ";
  std::string value = firstNonFinite(trainer, /*gradient=*/false);
  if (!value.empty())
    message += "parameter '" + value + "' has non-finite values; ";
  else
    message += "the update was skipped (parameters stay finite); ";
  message += "stopping without writing a checkpoint (a lower learning rate "
             "or the plan's clip_norm may help; --on-nonfinite skip goes on)";
  return failedPrecondition(message);
}

std::string formatDuration(double seconds) {
  int64_t total = static_cast<int64_t>(seconds + 0.5);
  char text[32];
  std::snprintf(text, sizeof(text), "%02" PRId64 ":%02" PRId64 ":%02" PRId64,
                total / 3600, total / 60 % 60, total % 60);
  return text;
}

/// Where errors go: on a grid, messages name the rank, and a failure after
/// the ranks started working together ends the whole job (the others
/// would wait forever in their next collective).
struct Job {
  int rank = 0, size = 1;
  bool running = false; // the ranks depend on each other from here on

  int fail(const Status &status) const {
    if (size > 1)
      std::fprintf(stderr, "moe-train: rank %d: error: %s\n", rank,
                   status.toString().c_str());
    else
      std::fprintf(stderr, "moe-train: error: %s\n", status.toString().c_str());
    std::fflush(stderr);
    if (running && size > 1)
      MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  }
};

/// `pattern` with every "{rank}" replaced by the rank.
std::string perRankPath(std::string pattern, int rank) {
  const std::string key = "{rank}";
  for (size_t at = pattern.find(key); at != std::string::npos;
       at = pattern.find(key, at))
    pattern.replace(at, key.size(), std::to_string(rank));
  return pattern;
}

/// The --comm-stats record of this rank: what its communicators sent in
/// the last step (per collective kind), whether every step sent the same,
/// and the bytes the runtime allocated for the plan's regions.
Status writeCommStats(const std::string &path, const runner::Trainer &trainer,
                      int worldSize, int64_t steps,
                      const comm::CommStats &lastStep, bool sameEveryStep) {
  std::ostringstream out;
  const plan::fb::Plan &plan = trainer.plan().plan();
  const runner::GridLocation &location = trainer.location();
  out << "{\"rank\": " << location.rank() << ", \"world_size\": " << worldSize
      << ", \"grid\": {";
  if (plan.grid()->axes())
    for (uint32_t a = 0; a < plan.grid()->axes()->size(); ++a)
      out << (a ? ", " : "") << "\""
          << plan.grid()->axes()->Get(a)->name()->str()
          << "\": " << plan.grid()->axes()->Get(a)->size();
  out << "}, \"coords\": [";
  for (size_t a = 0; a < location.coords.size(); ++a)
    out << (a ? ", " : "") << location.coords[a];
  out << "], \"steps\": " << steps << ", \"step_collectives\": {";
  for (int kind = 0; kind < comm::kNumCollectiveKinds; ++kind)
    out << (kind ? ", " : "") << "\""
        << comm::collectiveName(static_cast<comm::CollectiveKind>(kind))
        << "\": {\"calls\": " << lastStep.calls[kind]
        << ", \"bytes_sent\": " << lastStep.bytesSent[kind] << "}";
  const exec::Executor &executor = trainer.executor();
  out << "}, \"step_bytes_sent\": " << lastStep.totalBytesSent()
      << ", \"same_every_step\": " << (sameEveryStep ? "true" : "false")
      << ", \"arena_bytes\": " << executor.arenaBytes()
      << ", \"persistent_bytes\": " << executor.persistentBytes()
      << ", \"host_bytes\": " << executor.hostBytes()
      << ", \"allocated_bytes\": "
      << executor.arenaBytes() + executor.persistentBytes() << "}\n";
  std::string text = out.str();
  Status status = checkpoint::writeFileAtomically(path, text.data(),
                                                  text.size());
  if (!status.ok())
    status.withContext("writing the comm-stats file '" + path + "'");
  return status;
}

/// Before anything runs: an output file `path` (of option `flag`) must be
/// creatable, so that a missing or read-only directory is reported now and
/// not at the first save, hours later, and it must not be the plan.
Status checkOutputFile(const std::string &flag, const std::string &path,
                       const std::string &planPath) {
  struct stat target {};
  if (::stat(path.c_str(), &target) == 0) {
    if (S_ISDIR(target.st_mode))
      return invalidArgument(flag + " '" + path +
                             "' is a directory, expected a file name");
    // Character devices (/dev/null, /dev/stdout) are fine outputs.
    if (!S_ISREG(target.st_mode) && !S_ISCHR(target.st_mode))
      return invalidArgument(flag + " '" + path +
                             "' exists and is neither a regular file nor a "
                             "character device");
    struct stat plan {};
    if (::stat(planPath.c_str(), &plan) == 0 &&
        plan.st_dev == target.st_dev && plan.st_ino == target.st_ino)
      return invalidArgument(flag + " '" + path +
                             "' is the plan file; writing it would replace "
                             "the plan");
  }
  size_t slash = path.find_last_of('/');
  std::string directory = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  struct stat dir {};
  if (::stat(directory.c_str(), &dir) != 0)
    return invalidArgument(flag + " '" + path + "': the directory '" +
                           directory + "' does not exist (" +
                           std::strerror(errno) + ")");
  if (!S_ISDIR(dir.st_mode))
    return invalidArgument(flag + " '" + path + "': '" + directory +
                           "' is not a directory");
  if (::access(directory.c_str(), W_OK | X_OK) != 0)
    return invalidArgument(flag + " '" + path + "': the directory '" +
                           directory + "' is not writable (" +
                           std::strerror(errno) + ")");
  return Status::success();
}

/// A resumed run continues the metrics of the run it resumes: rows of
/// steps >= `firstStep` (written after the checkpoint, by the run that was
/// stopped) and a partial last row (of a killed run) are dropped, so every
/// step appears once. The file is rewritten atomically.
Status trimMetrics(const std::string &path, int64_t firstStep) {
  std::ifstream in(path);
  if (!in)
    return Status::success(); // nothing to continue: a new file
  std::string kept, line;
  while (std::getline(in, line)) {
    if (in.eof())
      break; // no newline: a partial row
    const std::string prefix = "{\"step\": ";
    if (line.compare(0, prefix.size(), prefix) != 0)
      continue;
    long long step = std::atoll(line.c_str() + prefix.size());
    if (step >= 1 && step < firstStep)
      kept += line + "\n";
  }
  Status status =
      checkpoint::writeFileAtomically(path, kept.data(), kept.size());
  if (!status.ok())
    status.withContext("rewriting the metrics file '" + path + "'");
  return status;
}

bool sameStats(const comm::CommStats &a, const comm::CommStats &b) {
  for (int kind = 0; kind < comm::kNumCollectiveKinds; ++kind)
    if (a.calls[kind] != b.calls[kind] ||
        a.bytesSent[kind] != b.bytesSent[kind])
      return false;
  return true;
}

} // namespace

int main(int argc, char **argv) {
  // The options first, so that usage errors and --help need no MPI. A
  // process started without a launcher (mpirun, srun) is a job of one and
  // does not start MPI: it runs where MPI is not installed or configured
  // (e.g. a GPU machine that only has the shared libraries).
  Options options;
  if (!parseOptions(argc, argv, options))
    return 2;
  std::optional<comm::MpiSession> mpi;
  Job job;
  if (comm::startedByMpiLauncher()) {
    mpi.emplace(&argc, &argv);
    if (!mpi->status().ok()) {
      Status status = mpi->status();
      return job.fail(status.withContext("starting MPI"));
    }
    job.rank = mpi->worldRank();
    job.size = mpi->worldSize();
  }
  // The MPI watchdog runs for multi-rank jobs; the program and rank are
  // set in every job, for the NCCL collectives' timeout messages too.
  comm::configureCollectiveWatchdog(
      job.size > 1 ? static_cast<double>(options.collectiveTimeout) : 0.0,
      "moe-train", job.rank);
  const bool rankZero = job.rank == 0;

  Expected<plan::LoadedPlan> loaded = plan::loadPlan(options.plan);
  if (!loaded.ok())
    return job.fail(loaded.status());
  // Length buckets: the further plans, checked against the main plan when
  // the trainers are made (runner::BucketTrainer).
  std::vector<runner::PlanFile> bucketPlans;
  for (const std::string &path : options.bucketPlans) {
    Expected<plan::LoadedPlan> bucket = plan::loadPlan(path);
    if (!bucket.ok())
      return job.fail(bucket.takeStatus().withContext("--bucket-plan"));
    bucketPlans.push_back({path, std::move(*bucket)});
  }
  {
    // Outputs are checked before anything runs (every rank: rank 0 writes
    // the checkpoint and metrics, each rank its comm stats).
    std::vector<std::pair<std::string, std::string>> outputs;
    if (!options.save.empty())
      outputs.emplace_back("--save", options.save);
    if (!options.metrics.empty() && rankZero)
      outputs.emplace_back("--metrics", options.metrics);
    if (!options.evalJson.empty() && rankZero) {
      outputs.emplace_back("--eval-json", options.evalJson);
      outputs.emplace_back("--eval-json",
                           evaluationCheckpoint(options.evalJson));
    }
    if (!options.commStats.empty())
      outputs.emplace_back("--comm-stats",
                           perRankPath(options.commStats, job.rank));
    for (const auto &[flag, path] : outputs)
      if (Status status = checkOutputFile(flag, path, options.plan);
          !status.ok())
        return job.fail(status);
  }
  const plan::fb::Plan &planView = loaded->plan();
  std::vector<int64_t> gridShape = runner::gridShapeOf(planView);
  int64_t ranks = plan::numRanks(*planView.grid());
  if (ranks != job.size) {
    // Every rank sees the same mismatch; one message is enough.
    if (!rankZero)
      return 1;
    return job.fail(failedPrecondition(
        "the plan's device grid " + runner::describeGrid(planView) + " has " +
        std::to_string(ranks) + " rank" + (ranks == 1 ? "" : "s") +
        ", but this job has " + std::to_string(job.size) + " process" +
        (job.size == 1 ? "" : "es") + "; run it as mpirun -np " +
        std::to_string(ranks) + " moe-train " + options.plan + " ..."));
  }
  std::vector<std::string> axisNames;
  if (planView.grid()->axes())
    for (const plan::fb::GridAxis *axis : *planView.grid()->axes())
      axisNames.push_back(axis->name()->str());
  std::unique_ptr<comm::GridCommunicators> grid;
  if (mpi) {
    Expected<std::unique_ptr<comm::GridCommunicators>> made =
        comm::makeMpiGrid(gridShape, axisNames);
    if (!made.ok())
      return job.fail(made.status());
    grid = std::move(*made);
  }
  job.running = true;

  Expected<std::unique_ptr<hal::Device>> device = hal::createDevice(
      *hal::parseBackend(options.device), hal::DeviceOptions());
  if (!device.ok())
    return job.fail(device.takeStatus().withContext("--device " + options.device));
  const bool useNccl =
      options.comm == "nccl" ||
      (options.comm == "auto" && grid &&
       exec::deviceCommunicatorsAvailable(**device).ok());
  if (useNccl) {
    // NCCL on the device's stream, bootstrapped over the MPI grid (or a
    // single-rank grid for one process).
    std::unique_ptr<comm::GridCommunicators> bootstrap = std::move(grid);
    if (!bootstrap) {
      Expected<std::unique_ptr<comm::GridCommunicators>> single =
          comm::makeSingleRankGrid(gridShape);
      if (!single.ok())
        return job.fail(single.status());
      bootstrap = std::move(*single);
    }
    Expected<std::unique_ptr<comm::GridCommunicators>> made =
        exec::makeDeviceGrid(std::move(bootstrap), **device, axisNames,
                             {static_cast<double>(options.collectiveTimeout)});
    if (!made.ok())
      return job.fail(made.takeStatus().withContext("--comm nccl"));
    grid = std::move(*made);
  }
  if (options.memoryLimit > 0)
    ::setenv("MOERT_MEMORY_LIMIT", std::to_string(options.memoryLimit).c_str(),
             1);
  // One plan, or length buckets: one trainer per plan over one copy of
  // the persistent state, the main plan's trainer owning it.
  std::unique_ptr<runner::Trainer> single;
  std::unique_ptr<runner::BucketTrainer> buckets;
  if (bucketPlans.empty()) {
    Expected<std::unique_ptr<runner::Trainer>> created =
        runner::Trainer::create(std::move(*loaded), options.seed,
                                options.alphabet, grid.get(), device->get(),
                                options.offloadOptimizer);
    if (!created.ok())
      return job.fail(created.status());
    single = std::move(*created);
  } else {
    bucketPlans.insert(bucketPlans.begin(),
                       runner::PlanFile{options.plan, std::move(*loaded)});
    Expected<std::unique_ptr<runner::BucketTrainer>> created =
        runner::BucketTrainer::create(std::move(bucketPlans), options.seed,
                                      options.alphabet, grid.get(),
                                      device->get(), options.offloadOptimizer);
    if (!created.ok())
      return job.fail(created.status());
    buckets = std::move(*created);
  }
  runner::Trainer &trainer = buckets ? buckets->main() : *single;
  for (size_t b = 0; b < (buckets ? buckets->numBuckets() : 1); ++b) {
    exec::Executor &executor =
        (buckets ? buckets->bucket(b) : trainer).executor();
    executor.setCollectiveOverlap(options.overlapCollectives == "on");
    if (!options.overlapOffload.empty())
      executor.setHostWorkOverlap(options.overlapOffload == "on");
  }
  if (options.overlapCollectives == "on" && mpi && !useNccl &&
      !mpi->serializedThreads() && rankZero)
    std::printf("moe-train: the MPI library does not provide "
                "MPI_THREAD_SERIALIZED; collectives run without overlap\n");
  if (!options.data.empty() && buckets) {
    std::vector<runner::SyntheticTaskConfig> shapes;
    for (size_t b = 0; b < buckets->numBuckets(); ++b)
      shapes.push_back(buckets->bucket(b).task().config());
    Expected<std::unique_ptr<data::MultitaskSource>> source =
        data::MultitaskSource::createBuckets(options.data, shapes);
    if (!source.ok())
      return job.fail(
          source.takeStatus().withContext("--data " + options.data));
    if (rankZero) {
      std::printf("moe-train: %s\n", (*source)->describe().c_str());
      const std::vector<data::MultitaskSource::BucketPool> pools =
          (*source)->bucketPools();
      for (size_t b = 0; b < shapes.size(); ++b)
        std::printf("moe-train: bucket %zu: batch %" PRId64 " x source %" PRId64
                    " / target %" PRId64 " (%" PRId64 " / %" PRId64
                    " tokens), %" PRId64 " training pairs (%" PRId64
                    " target tokens), p = %.4f  [%s]\n",
                    b, shapes[b].batchSize, shapes[b].srcLen, shapes[b].tgtLen,
                    shapes[b].batchSize * shapes[b].srcLen,
                    shapes[b].batchSize * shapes[b].tgtLen, pools[b].pairs,
                    pools[b].targetTokens, pools[b].probability,
                    buckets->planPath(b).c_str());
    }
    if (Status status = buckets->setBatchSource(std::move(*source));
        !status.ok())
      return job.fail(status);
  } else if (!options.data.empty()) {
    Expected<std::unique_ptr<data::MultitaskSource>> source =
        data::MultitaskSource::create(options.data, trainer.task().config());
    if (!source.ok())
      return job.fail(source.takeStatus().withContext("--data " +
                                                      options.data));
    if (rankZero)
      std::printf("moe-train: %s\n", (*source)->describe().c_str());
    trainer.setBatchSource(std::move(*source));
  }
  // Translation evaluation: rank 0 holds the one-process plan, checked now.
  std::unique_ptr<TranslationEvaluation> evaluation;
  if (!options.evalPlan.empty() && rankZero) {
    evaluation = std::make_unique<TranslationEvaluation>();
    auto failEval = [&](Status status) {
      return job.fail(status.withContext("--eval-plan " + options.evalPlan));
    };
    Expected<plan::LoadedPlan> evalLoaded = plan::loadPlan(options.evalPlan);
    if (!evalLoaded.ok())
      return failEval(evalLoaded.status());
    if (plan::numRanks(*evalLoaded->plan().grid()) != 1)
      return failEval(invalidArgument(
          "the evaluation plan must be of one process (compile the model "
          "without --moe-partition), found the grid " +
          runner::describeGrid(evalLoaded->plan())));
    auto modelName = [](const plan::fb::Plan &p) {
      return p.model_name() ? p.model_name()->str() : std::string();
    };
    if (modelName(evalLoaded->plan()) != modelName(planView))
      return failEval(invalidArgument(
          "the evaluation plan is of model '" + modelName(evalLoaded->plan()) +
          "', the training plan of '" + modelName(planView) + "'"));
    Expected<std::unique_ptr<runner::Trainer>> evalTrainer =
        runner::Trainer::create(std::move(*evalLoaded), options.seed, 0,
                                nullptr, device->get());
    if (!evalTrainer.ok())
      return failEval(evalTrainer.status());
    evaluation->trainer = std::move(*evalTrainer);
    Expected<std::unique_ptr<data::SentencePieceModel>> spm =
        data::SentencePieceModel::load(options.data + "/spm.model");
    if (!spm.ok())
      return failEval(spm.status());
    evaluation->spm = std::move(*spm);
    if (evaluation->trainer->task().config().vocabSize !=
        evaluation->spm->size())
      return failEval(failedPrecondition(
          "its vocabulary has " +
          std::to_string(evaluation->trainer->task().config().vocabSize) +
          " tokens, the corpus' SentencePiece model " +
          std::to_string(evaluation->spm->size())));
    data::TranslationEvalOptions &eo = evaluation->options;
    eo.corpus = options.data;
    eo.split = options.evalSplit;
    eo.sentences = options.evalSentences;
    eo.fromEnglish = options.evalDirection != "x-en";
    eo.toEnglish = options.evalDirection != "en-x";
    Expected<std::vector<std::string>> languages =
        data::corpusLanguages(options.data);
    if (!languages.ok())
      return failEval(languages.status());
    eo.languages = *languages;
    if (options.evalLanguages != "all") {
      eo.languages.clear();
      std::stringstream list(options.evalLanguages);
      for (std::string language; std::getline(list, language, ',');) {
        if (std::find(languages->begin(), languages->end(), language) ==
            languages->end())
          return job.fail(invalidArgument("--eval-languages: '" + language +
                                          "' is not a language of " +
                                          options.data + "/languages.tsv"));
        eo.languages.push_back(language);
      }
    }
  }
  if (options.lossScalePower >= 0 || options.lossScaleWindow >= 0) {
    train::LossScalerConfig scaling;
    if (options.lossScalePower >= 0)
      scaling.initialScale =
          std::ldexp(1.0, static_cast<int>(options.lossScalePower));
    if (options.lossScaleWindow >= 0)
      scaling.window = options.lossScaleWindow;
    if (Status status = trainer.setLossScalerConfig(scaling); !status.ok())
      return job.fail(status);
  }
  if (Status status = trainer.initializeParameters(); !status.ok())
    return job.fail(status);
  int64_t firstStep = 1;
  if (!options.resume.empty()) {
    Expected<int64_t> resumed = trainer.loadCheckpoint(options.resume);
    if (!resumed.ok())
      return job.fail(resumed.status());
    // A step at or past --steps (up to INT64_MAX) leaves nothing to do; it
    // is compared before adding one, which could overflow.
    if (*resumed < options.steps)
      firstStep = *resumed + 1;
    if (*resumed < 0 || *resumed >= options.steps)
      return job.fail(invalidArgument(
          "checkpoint '" + options.resume + "' is at step " +
          std::to_string(*resumed) + ", --steps " +
          std::to_string(options.steps) + " leaves nothing to do"));
    if (rankZero)
      std::printf("moe-train: resumed from %s at step %" PRId64 "\n",
                  options.resume.c_str(), *resumed);
  }

  std::ofstream metrics;
  if (!options.metrics.empty() && rankZero) {
    // A resumed run appends to the metrics of the run it continues.
    if (!options.resume.empty())
      if (Status status = trimMetrics(options.metrics, firstStep);
          !status.ok())
        return job.fail(status);
    metrics.open(options.metrics, options.resume.empty()
                                      ? std::ios::out | std::ios::trunc
                                      : std::ios::out | std::ios::app);
    // Nine significant digits print every float exactly (round trip).
    metrics.precision(9);
    if (!metrics)
      return job.fail(invalidArgument("cannot open the metrics file '" +
                                      options.metrics + "' for writing"));
  }
  const exec::Executor &executor = trainer.executor();
  if (rankZero) {
    std::printf("moe-train: plan %s (%s), %zu parameters, arena %.2f MiB, "
                "persistent %.2f MiB, seed %" PRIu64 "\n",
                options.plan.c_str(),
                trainer.plan().plan().model_name()
                    ? trainer.plan().plan().model_name()->c_str()
                    : "?",
                trainer.parameters().size(),
                executor.arenaBytes() / (1024.0 * 1024.0),
                executor.persistentBytes() / (1024.0 * 1024.0), options.seed);
    if (executor.hostBytes() > 0 && trainer.hasDeviceCopies())
      std::printf("moe-train: optimizer state and fp32 master weights "
                  "offloaded to host memory: %.2f MiB (16-bit parameter "
                  "copies on the device)\n",
                  executor.hostBytes() / (1024.0 * 1024.0));
    else if (executor.hostBytes() > 0)
      std::printf("moe-train: optimizer state offloaded to host memory: "
                  "%.2f MiB\n",
                  executor.hostBytes() / (1024.0 * 1024.0));
    if (executor.hostBytes() > 0)
      std::printf("moe-train: the host work (%zu instructions) runs %s\n",
                  executor.hostWorkSchedule().numAsynchronous(),
                  !executor.hostWorkOverlap() ? "in program order"
                  : (*device)->hostAccessible()
                      ? "on a thread beside the kernels"
                      : "on a transfer stream beside the kernels");
    if ((*device)->backend() != hal::Backend::Cpu)
      std::printf("moe-train: device %s\n", (*device)->description().c_str());
    if (job.size > 1)
      std::printf("moe-train: %d ranks on the grid %s (arena and persistent "
                  "bytes are per rank)\n",
                  job.size, runner::describeGrid(planView).c_str());
  }

  double elapsed = 0;
  int64_t tokens = 0;
  comm::CommStats lastComm;
  bool sameCommEveryStep = true;
  int64_t nonFiniteRun = 0;
  for (int64_t step = firstStep; step <= options.steps; ++step) {
    comm::setWatchdogStep(step);
    Expected<runner::StepMetrics> result =
        buckets ? buckets->runStep(step) : trainer.runStep(step);
    // fp32 plans: a non-finite gradient norm skips the update (the clipping
    // factor is 0); a run of them is divergence, not a passing overflow
    // (fp16 plans rescale instead, see the loss scaler).
    if (result.ok() && result->lossScale <= 0) {
      nonFiniteRun = std::isfinite(result->gradNorm) ? 0 : nonFiniteRun + 1;
      if (nonFiniteRun >= options.maxNonFinite)
        return job.fail(failedPrecondition(
            "training diverged: the gradient norm was not finite for " +
            std::to_string(nonFiniteRun) + " steps in a row (last at step " +
            std::to_string(step) +
            "; those updates were skipped); lower the learning rate or "
            "resume from an earlier checkpoint"));
    }
    if (!result.ok())
      return job.fail(result.status());
    const runner::StepMetrics &m = *result;
    if (step > firstStep && !sameStats(lastComm, m.comm))
      sameCommEveryStep = false;
    lastComm = m.comm;
    elapsed += m.seconds;
    tokens += m.targetTokens;
    if (metrics.is_open()) {
      // JSON has no NaN or infinity (an fp16 overflow gives a non-finite
      // gradient norm): those are written as null.
      auto number = [](float value) {
        std::ostringstream text;
        text.precision(9);
        if (std::isfinite(value))
          text << value;
        else
          text << "null";
        return text.str();
      };
      metrics << "{\"step\": " << m.step << ", \"loss\": " << number(m.loss)
              << ", \"aux_loss\": " << number(m.auxLoss)
              << ", \"grad_norm\": " << number(m.gradNorm)
              << ", \"lr\": " << m.learningRate
              << ", \"tokens\": " << m.targetTokens;
      if (buckets) // length buckets: the step's bucket and real tokens
        metrics << ", \"bucket\": " << m.bucket
                << ", \"source_tokens\": " << m.sourceTokens;
      if (m.lossScale > 0)
        metrics << ", \"loss_scale\": " << std::to_string(m.lossScale)
                << ", \"skipped\": " << (m.skipped ? "true" : "false");
      metrics << ", \"seconds\": " << m.seconds << ", \"expert_counts\": [";
      for (size_t l = 0; l < m.expertCounts.size(); ++l) {
        metrics << (l ? ", [" : "[");
        for (size_t e = 0; e < m.expertCounts[l].size(); ++e)
          metrics << (e ? ", " : "") << m.expertCounts[l][e];
        metrics << "]";
      }
      metrics << "]}\n";
      metrics.flush();
      if (!metrics)
        return job.fail(dataLoss("writing the metrics file '" +
                                 options.metrics + "' failed at step " +
                                 std::to_string(step) + " (" +
                                 std::strerror(errno) + ")"));
    }
    // The loss and the gradient norm are reduced over the grid, so every
    // rank takes the same decision. fp16 plans skip such steps (loss
    // scaling) and are not stopped.
    if (options.onNonFinite == "stop" && m.lossScale == 0 &&
        (!std::isfinite(m.loss) || !std::isfinite(m.gradNorm)))
      return job.fail(nonFiniteStepError(
          buckets ? buckets->bucket(static_cast<size_t>(m.bucket)) : trainer,
          m)); // (a bucket's gradients are in its own plan's buffers)
    bool last = step == options.steps;
    if (!options.save.empty() &&
        (last || (options.saveEvery > 0 && step % options.saveEvery == 0)))
      if (Status status = trainer.saveCheckpoint(options.save, step);
          !status.ok())
        return job.fail(status);
    if (!options.evalPlan.empty() &&
        (last || (options.evalEvery > 0 && step % options.evalEvery == 0)))
      if (Status status = evaluateTranslation(trainer, evaluation.get(),
                                              options.evalJson, step);
          !status.ok())
        return job.fail(
            status.withContext("evaluation at step " + std::to_string(step)));
    if (rankZero &&
        (step % options.logEvery == 0 || step == firstStep || last)) {
      double tokensPerSecond = elapsed > 0 ? tokens / elapsed : 0.0;
      double eta = elapsed / (step - firstStep + 1) * (options.steps - step);
      char scaling[96] = "";
      if (m.lossScale > 0) // fp16 plans: the loss scale of this step
        std::snprintf(scaling, sizeof(scaling), "  scale %.0f%s", m.lossScale,
                      m.skipped ? " (overflow: skipped)" : "");
      char bucket[96] = "";
      if (buckets) // length buckets: this step's bucket and real tokens
        std::snprintf(bucket, sizeof(bucket),
                      "  bucket %d (%" PRId64 " src / %" PRId64 " tgt tokens)",
                      m.bucket, m.sourceTokens, m.targetTokens);
      std::printf("step %6" PRId64 "/%" PRId64
                  "  loss %8.4f  aux %6.4f  gnorm %8.4f  lr %.3e  "
                  "%8.0f tok/s  ETA %s%s%s\n",
                  step, options.steps, m.loss, m.auxLoss, m.gradNorm,
                  m.learningRate, tokensPerSecond, formatDuration(eta).c_str(),
                  scaling, bucket);
      std::fflush(stdout);
    }
  }
  if (!options.commStats.empty())
    if (Status status = writeCommStats(
            perRankPath(options.commStats, job.rank), trainer, job.size,
            options.steps - firstStep + 1, lastComm, sameCommEveryStep);
        !status.ok())
      return job.fail(status);
  if (rankZero)
    std::printf("moe-train: %" PRId64 " steps in %s, %.0f target tokens/s\n",
                options.steps - firstStep + 1, formatDuration(elapsed).c_str(),
                elapsed > 0 ? tokens / elapsed : 0.0);
  if (options.evalBatches > 0) {
    if (!options.data.empty())
      return job.fail(unimplemented("--eval-batches decodes the synthetic "
                                    "task; not with --data yet"));
    Expected<runner::Trainer::GreedyEval> eval =
        trainer.evaluateGreedy(options.evalBatches);
    if (!eval.ok())
      return job.fail(eval.takeStatus().withContext("--eval-batches"));
    const int64_t alphabet = options.alphabet > 0 ? options.alphabet : 0;
    std::printf("moe-train: greedy decoding of %" PRId64
                " held-out sequences: %" PRId64 " reversed exactly (%.1f %%), "
                "token accuracy %.1f %%%s\n",
                eval->sequences, eval->exact,
                eval->sequences ? 100.0 * eval->exact / eval->sequences : 0.0,
                eval->tokens ? 100.0 * eval->correct / eval->tokens : 0.0,
                alphabet > 0 ? (" (chance " +
                                std::to_string(100.0 / alphabet).substr(0, 4) +
                                " %)")
                                   .c_str()
                             : "");
  }
  return 0;
}
