//===- moe-plan.cpp - Which grid fits, and how fast, before launch --------===//
//
//   moe-plan MODEL.json --devices N [--device a100-40g] [--gpus-per-node 8]
//            [--efficiency 0.4] [--overlap 0] [--zero 0,1,2] [--tp LIST]
//            [--ep LIST] [--offload] [--top K] [--json FILE]
//            [--device-memory GIB] [--host-memory GIB] [--latency-us IN,OUT]
//            [--bucket-mb MB] [--offload-params] [--offload-overlap 1]
//            [--largest experts|layers]
//
// Enumerates the partitionings of MODEL over N devices (dp x ep x tp with
// dp*ep*tp = N, ZeRO stages, with and without optimizer-state offload),
// compiles each one with the real pipeline (moe-training-pipeline) and takes
// its per-rank numbers from moe-partition-report (the bytes the runtime
// allocates and the bytes each collective sends: exact), then:
//   - memory: device bytes = persistent region + arena, minus the optimizer
//     state when it is offloaded (then host bytes); a grid fits when both
//     are at most the device's (host's) memory times the usable fraction
//     (0.9), else the report names the largest term;
//   - step time: matrix FLOPs / (peak x efficiency) + the communication
//     not hidden behind compute (each collective's bytes, per grid-axes
//     group, over NVLink when the group lies inside a node, else over the
//     inter-node link, plus a fixed latency per collective call, minus
//     overlap x compute) + with offload the host's part: the gradient copies
//     to the host, the parameter copies (moment-only offload: the fp32
//     parameter down and back up; --offload-params: its 16-bit copy up)
//     over PCIe and the host AdamW pass. With --offload-overlap 1 (the
//     default, as the runtime does it on a GPU) each gradient's copy runs on
//     a transfer stream while the backward pass goes on, and the host
//     updates one parameter while the previous one's copy goes back, so
//     only max(0, gradient copies - backward compute) + max(host AdamW,
//     parameter copies) is added; with 0 their sum;
//   - predicted MFU: the model FLOPs of the step (the unpartitioned
//     program's matrix FLOPs, so redundant work of a grid does not count)
//     per device / (step time x peak).
// Grids the partitioner rejects (experts not divisible by ep, heads by tp,
// batch by dp*ep, ...) are listed with its reason.
//
// With --largest experts|layers the model is a family: the number of experts
// per MoE layer (a multiple of ep) or the depth (encoder and decoder layers
// in the base model's proportion) is scaled, and for each of E+D (ZeRO 0),
// E+Z (ZeRO 1/2) and E+Z-Offload, with tp = 1 and with tp > 1, the planner
// finds the largest model (parameters) that fits. Per grid, per-rank memory
// is affine in the scaled quantity in the regime that matters, so a secant
// search compiles a handful of sizes (the prediction from the last two
// compiles, falling back to bisection), and every answer is verified: the
// size found was compiled and fits, the next size was compiled and does
// not.
//
// The assumptions are printed with every answer. Exit status 1 when nothing
// fits, 2 on a bad command line.
//
//===----------------------------------------------------------------------===//
#include "compiler/InitAll.h"
#include "compiler/ModelBuilder.h"
#include "compiler/ModelConfig.h"
#include "compiler/ModelStats.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace {

struct DeviceSpec {
  std::string name;
  double memoryGiB, peakTflops, nvlinkGBs, interGBs, pcieGBs, hostGiB;
};

// Dense bf16/fp16 tensor-core peaks and per-GPU link bandwidths (one
// direction) from the vendors' data sheets; inter-node: one HDR/NDR
// InfiniBand adapter per GPU; host memory: the DGX system's memory divided
// by its GPUs (DGX-2 1.5 TB / 16, DGX A100 320 GB 1 TB / 8, DGX A100 640 GB
// 2 TB / 8, DGX H100 and H200 2 TB / 8).
const DeviceSpec kDevices[] = {
    {"v100-32g", 32, 125, 150, 12.5, 16, 96},
    {"a100-40g", 40, 312, 300, 25, 32, 128},
    {"a100-80g", 80, 312, 300, 25, 32, 256},
    {"h100-80g", 80, 989, 450, 50, 64, 256},
    {"h200-141g", 141, 989, 450, 50, 64, 256},
};

struct Options {
  std::string model, json, largest;
  int64_t devices = 0, gpusPerNode = 8, top = 10;
  DeviceSpec device = kDevices[1];
  double efficiency = 0.4, overlap = 0.0, usable = 0.9, hostAdamGBs = 100;
  // Fixed cost of one collective call (launch, synchronization, the first
  // hop), in microseconds, inside a node and across nodes.
  double latencyInUs = 15, latencyOutUs = 60;
  // Gradient buckets of the compiled plans (moe-bucket-gradients), MiB;
  // 0: one all-reduce per tensor.
  double bucketMb = 0;
  std::vector<int64_t> zero = {0, 1, 2};
  std::vector<int64_t> tp = {1, 2, 4, 8}, ep; // ep empty: every divisor
  bool offload = false;
  // Offloaded candidates compiled with precision=bf16 offload=params:
  // fp32 master weights on the host, 16-bit copies on the device.
  bool offloadParams = false;
  // The offload's host work overlapped with the device's (the runtime's
  // default on a GPU): gradient copies behind the backward pass, the host
  // AdamW beside the parameter copies. False: all of it in series.
  bool offloadOverlap = true;
};

const char *kUsage =
    "usage: moe-plan MODEL.json --devices N [--device NAME] [--gpus-per-node "
    "G]\n"
    "                [--efficiency F] [--overlap F] [--zero 0,1,2] [--tp "
    "1,2,4,8] [--ep LIST]\n"
    "                [--offload] [--offload-params] [--device-memory GIB] "
    "[--host-memory GIB]\n"
    "                [--latency-us IN,OUT] [--bucket-mb MB] "
    "[--offload-overlap 0|1]\n"
    "                [--largest experts|layers] [--top K] [--json FILE]\n"
    "devices: v100-32g, a100-40g, a100-80g, h100-80g, h200-141g\n";

int usage(const std::string &why) {
  std::fprintf(stderr, "moe-plan: %s\n%s", why.c_str(), kUsage);
  return 2;
}

struct Grid {
  int64_t dp = 1, ep = 1, tp = 1, zero = 0;
  int64_t ranks() const { return dp * ep * tp; }
};

/// One collective kind over one set of grid axes, from the partition report.
struct Traffic {
  std::string kind;
  std::vector<int> axes;
  int64_t bytes = 0;
  int64_t calls = 0;
};

/// What the partition report says about one compiled grid.
struct Report {
  std::string rejected; // the partitioner's reason, when it rejects
  int64_t parameterBytes = 0, gradientBytes = 0, optimizerBytes = 0,
          batchBytes = 0, activationBytes = 0, persistentBytes = 0;
  // Compiled with offload=params: the host region and the 16-bit copies
  // (persistentBytes is then the device's part only).
  int64_t hostBytes = 0, deviceCopyBytes = 0;
  double flops = 0;
  // Of `flops`, the gradient ops' (the backward pass's matrix products).
  double backwardFlops = 0;
  std::vector<Traffic> traffic;
};

struct Candidate {
  Grid grid;
  bool offload = false;
  Report report;
  double modelFlops = 0; // of the whole step, all devices
  // Derived.
  int64_t deviceBytes = 0, hostBytes = 0;
  bool fits = false;
  std::string largestTerm;
  double computeS = 0, commS = 0, exposedCommS = 0, offloadS = 0;
  // The offload's parts: the backward pass's compute, the gradient copies
  // to the host, the parameter copies of the optimizer phase and the host
  // AdamW (offloadS is what of them the step does not hide).
  double backwardS = 0, gradientCopyS = 0, parameterCopyS = 0, hostAdamS = 0;
  double stepS() const { return computeS + exposedCommS + offloadS; }
  double mfu(const DeviceSpec &d) const {
    return modelFlops / static_cast<double>(grid.ranks()) /
           (stepS() * d.peakTflops * 1e12);
  }
};

std::string gib(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f", bytes / double(1ull << 30));
  return text;
}

std::vector<int> parseAxes(llvm::StringRef text) {
  std::vector<int> axes;
  text = text.trim().trim("[]");
  for (llvm::StringRef item : llvm::split(text, ',')) {
    int axis = 0;
    if (!item.trim().getAsInteger(10, axis))
      axes.push_back(axis);
  }
  return axes;
}

/// Compiles configurations for grids through the real pipeline and reads
/// the partition report; remembers what it compiled. Each compile builds
/// its model in a context of its own: what a context interns lives as long
/// as it does, and a search compiles hundreds of models (with
/// offload=params tens of MB each).
class Compiler {
public:
  /// `overlap`: compile the memory plan for collectives beside the compute
  /// (the pipeline's overlap=true), which the step time then assumes.
  Compiler(const mlir::DialectRegistry &registry, std::string reportPath,
           double bucketMb, bool overlap)
      : registry(registry), reportPath(std::move(reportPath)) {
    if (bucketMb > 0) {
      char text[64];
      std::snprintf(text, sizeof(text), " bucket-mb=%.17g", bucketMb);
      bucketOption = text;
    }
    if (overlap)
      bucketOption += " overlap=true";
  }

  /// `offloadParams`: compile with precision=bf16 offload=params.
  Report compile(const mlir::moe::ModelConfig &config, const Grid &g,
                 bool offloadParams = false);
  int64_t parameterCount(const mlir::moe::ModelConfig &config);
  int64_t compiles = 0;

private:
  /// A context with the project's dialects loaded, sharing one thread pool.
  std::unique_ptr<mlir::MLIRContext> newContext() {
    auto context = std::make_unique<mlir::MLIRContext>(
        registry, mlir::MLIRContext::Threading::DISABLED);
    context->setThreadPool(threads);
    context->loadAllAvailableDialects();
    return context;
  }
  const mlir::DialectRegistry &registry;
  llvm::DefaultThreadPool threads;
  std::string reportPath;
  std::string bucketOption; // pipeline options: buckets, overlap
};

Report Compiler::compile(const mlir::moe::ModelConfig &config, const Grid &g,
                         bool offloadParams) {
  Report r;
  ++compiles;
  // Destroyed after the module (declared before it).
  std::unique_ptr<mlir::MLIRContext> owner = newContext();
  mlir::MLIRContext &context = *owner;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::moe::buildModel(context, config);
  std::string diagnostics;
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &d) {
    if (diagnostics.empty())
      llvm::raw_string_ostream(diagnostics) << d;
    return mlir::success();
  });
  mlir::PassManager pm(&context);
  const std::string pipeline =
      "moe-training-pipeline{dp=" + std::to_string(g.dp) +
      " ep=" + std::to_string(g.ep) + " tp=" + std::to_string(g.tp) +
      " zero=" + std::to_string(g.zero) + bucketOption +
      (offloadParams ? " precision=bf16 offload=params" : "") +
      "},moe-partition-report{quiet=true json=" + reportPath + "}";
  if (mlir::failed(mlir::parsePassPipeline(pipeline, pm))) {
    r.rejected = "cannot build the pipeline '" + pipeline + "'";
    return r;
  }
  if (mlir::failed(pm.run(*module))) {
    r.rejected = diagnostics.empty() ? "the pipeline failed" : diagnostics;
    return r;
  }
  // The report's FLOPs are those of @train_step; the backward pass's share
  // (its gradient ops) is what the gradient copies to the host can hide
  // behind.
  if (auto step = module->lookupSymbol<mlir::func::FuncOp>("train_step"))
    r.backwardFlops =
        static_cast<double>(mlir::moe::computeMatmulFlops(step).backward);
  auto buffer = llvm::MemoryBuffer::getFile(reportPath);
  if (!buffer) {
    r.rejected = "the partition report was not written";
    return r;
  }
  llvm::Expected<llvm::json::Value> parsed =
      llvm::json::parse((*buffer)->getBuffer());
  if (!parsed) {
    r.rejected = "the partition report is not JSON: " +
                 llvm::toString(parsed.takeError()) + " in '" +
                 (*buffer)->getBuffer().substr(0, 80).str() + "'";
    return r;
  }
  const llvm::json::Object *report = parsed->getAsObject();
  if (!report) {
    r.rejected = "the partition report is not a JSON object";
    return r;
  }
  auto integer = [&](const char *key) {
    return report->getInteger(key).value_or(0);
  };
  r.parameterBytes = integer("parameter_bytes");
  r.gradientBytes = integer("gradient_bytes");
  r.optimizerBytes = integer("optimizer_state_bytes");
  r.batchBytes = integer("batch_bytes");
  r.activationBytes = integer("activation_bytes");
  r.persistentBytes = integer("persistent_bytes");
  r.hostBytes = integer("host_bytes");
  r.deviceCopyBytes = integer("device_copy_bytes");
  r.flops = static_cast<double>(integer("flops"));
  if (const llvm::json::Array *byAxes = report->getArray("by_axes"))
    for (const llvm::json::Value &value : *byAxes)
      if (const llvm::json::Object *entry = value.getAsObject()) {
        Traffic t;
        t.kind = entry->getString("kind").value_or("").str();
        t.axes = parseAxes(entry->getString("axes").value_or(""));
        t.bytes = entry->getInteger("bytes_sent").value_or(0);
        t.calls = entry->getInteger("count").value_or(0);
        r.traffic.push_back(std::move(t));
      }
  return r;
}

int64_t Compiler::parameterCount(const mlir::moe::ModelConfig &config) {
  std::unique_ptr<mlir::MLIRContext> context = newContext();
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::moe::buildModel(*context, config);
  auto forward = module->lookupSymbol<mlir::func::FuncOp>("forward");
  return forward ? mlir::moe::computeParamStats(forward).totalElements : 0;
}

void model(const Options &o, Candidate &c) {
  const DeviceSpec &d = o.device;
  const Report &r = c.report;
  c.deviceBytes = r.persistentBytes + r.activationBytes;
  c.hostBytes = 0;
  // Compiled with offload=params, the report splits device and host.
  const bool params = r.hostBytes > 0;
  if (params) {
    c.hostBytes = r.hostBytes;
  } else if (c.offload) {
    c.deviceBytes -= r.optimizerBytes;
    c.hostBytes = r.optimizerBytes;
  }
  const double capacity = d.memoryGiB * double(1ull << 30) * o.usable;
  const double hostCapacity = d.hostGiB * double(1ull << 30) * o.usable;
  c.fits = static_cast<double>(c.deviceBytes) <= capacity &&
           static_cast<double>(c.hostBytes) <= hostCapacity;
  std::vector<std::pair<int64_t, std::string>> terms = {
      {params ? r.persistentBytes - r.batchBytes : r.parameterBytes,
       params ? "parameters (16-bit copies and fp32 ones)" : "parameters"},
      {c.offload ? 0 : r.optimizerBytes, "optimizer state"},
      {r.activationBytes, "activations and gradients (arena)"},
      {r.batchBytes, "batch"}};
  c.largestTerm = std::max_element(terms.begin(), terms.end())->second;
  if (static_cast<double>(c.deviceBytes) <= capacity && !c.fits)
    c.largestTerm = params ? "host memory (offloaded master weights and "
                             "optimizer state)"
                           : "host memory (offloaded optimizer state)";
  c.computeS = r.flops / (d.peakTflops * 1e12 * o.efficiency);
  // Ranks are numbered dp-major, tp fastest: a group over the axes A spans
  // the product of the grid sizes from the outermost axis of A inwards, and
  // lies inside a node when that span does.
  const int64_t sizes[3] = {c.grid.dp, c.grid.ep, c.grid.tp};
  c.commS = 0;
  for (const Traffic &t : r.traffic) {
    int outer = 3;
    for (int axis : t.axes)
      outer = std::min(outer, axis);
    int64_t span = 1;
    for (int axis = std::max(outer, 0); axis < 3; ++axis)
      span *= sizes[axis];
    const bool inNode = outer == 3 || span <= o.gpusPerNode;
    c.commS += static_cast<double>(t.bytes) /
                   ((inNode ? d.nvlinkGBs : d.interGBs) * 1e9) +
               static_cast<double>(t.calls) *
                   (inNode ? o.latencyInUs : o.latencyOutUs) * 1e-6;
  }
  c.exposedCommS = std::max(0.0, c.commS - o.overlap * c.computeS);
  // Offload, as the runtime does it: each AdamW (a ZeRO shard with ZeRO,
  // the whole tensor without) gets its fp32 gradient on the host (4 bytes
  // per element; the moments are 2 x 4 bytes per element, so 0.5 x the
  // optimizer bytes), and the host update reads parameter, gradient and
  // both moments and writes parameter and moments (7 x 4 bytes per element:
  // 3.5 x). Moment-only offload keeps the fp32 parameter on the device: it
  // goes down and back up (8 bytes per element: 1 x). With offload=params
  // the master is on the host and a 16-bit copy goes up (2 bytes: 0.25 x,
  // counting every parameter as a GEMM weight; the rest, norms and router,
  // is small). Moment-only grids are compiled without offload: their
  // memory keeps each gradient on the device until its update, their time
  // assumes it streamed to the host as offload=optimizer does.
  c.offloadS = c.backwardS = c.gradientCopyS = c.parameterCopyS = c.hostAdamS =
      0;
  if (c.offload) {
    const double optimizer = static_cast<double>(r.optimizerBytes);
    c.backwardS = r.backwardFlops / (d.peakTflops * 1e12 * o.efficiency);
    c.gradientCopyS = 0.5 * optimizer / (d.pcieGBs * 1e9);
    c.parameterCopyS = (params ? 0.25 : 1.0) * optimizer / (d.pcieGBs * 1e9);
    c.hostAdamS = 3.5 * optimizer / (o.hostAdamGBs * 1e9);
    // Overlapped (the runtime's default on a GPU): each gradient's copy
    // runs on a transfer stream while the backward pass goes on, so only
    // what exceeds the backward's compute is exposed; the host updates one
    // parameter while the previous one's copy goes back on that stream.
    // For moment-only offload that is optimistic: the runtime copies each
    // fp32 parameter down on the same stream, behind the previous one's
    // copy up, and waits for it before the update.
    c.offloadS = o.offloadOverlap
                     ? std::max(0.0, c.gradientCopyS - c.backwardS) +
                           std::max(c.hostAdamS, c.parameterCopyS)
                     : c.gradientCopyS + c.parameterCopyS + c.hostAdamS;
  }
}

/// The per-rank memory terms of a candidate (the compiled plan's) and the
/// device/host split the planner derives from them.
void writeMemory(llvm::json::OStream &json, const Candidate &c) {
  json.attribute("parameter_bytes", c.report.parameterBytes);
  json.attribute("gradient_bytes", c.report.gradientBytes);
  json.attribute("optimizer_state_bytes", c.report.optimizerBytes);
  json.attribute("activation_bytes", c.report.activationBytes);
  json.attribute("persistent_bytes", c.report.persistentBytes);
  json.attribute("device_bytes", c.deviceBytes);
  json.attribute("host_bytes", c.hostBytes);
}

/// Writes `body`'s JSON to `path` through a temporary file renamed over it,
/// so a failed or interrupted write leaves no partial file; false (with a
/// message) when the file cannot be written.
bool writeJson(const std::string &path,
               llvm::function_ref<void(llvm::json::OStream &)> body) {
  llvm::Error error =
      llvm::writeToOutput(path, [&](llvm::raw_ostream &out) -> llvm::Error {
        llvm::json::OStream json(out, 1);
        body(json);
        out << "\n";
        return llvm::Error::success();
      });
  if (!error)
    return true;
  std::fprintf(stderr, "moe-plan: error: --json: %s\n",
               llvm::toString(std::move(error)).c_str());
  return false;
}

std::vector<int64_t> divisorsOf(int64_t n) {
  std::vector<int64_t> out;
  for (int64_t d = 1; d <= n; ++d)
    if (n % d == 0)
      out.push_back(d);
  return out;
}

void printAssumptions(const Options &o, const std::string &model) {
  const DeviceSpec &d = o.device;
  char buckets[96] = "one all-reduce per gradient (--bucket-mb)";
  if (o.bucketMb > 0)
    std::snprintf(buckets, sizeof(buckets),
                  "gradients reduced in buckets of %g MiB (--bucket-mb)",
                  o.bucketMb);
  std::printf("moe-plan: %s on %lld x %s (%.4g GiB, %.0f TFLOP/s bf16 peak, host "
              "%.4g GiB per device), %lld GPUs per node\n",
              model.c_str(), (long long)o.devices, d.name.c_str(), d.memoryGiB,
              d.peakTflops,
              d.hostGiB, (long long)o.gpusPerNode);
  std::printf("assumptions: usable memory %.0f %%, matrix FLOPs at %.0f %% of "
              "peak (--efficiency), %.0f %% of compute time overlapped with "
              "communication (--overlap%s), NVLink %.0f GB/s, inter-node %.4g "
              "GB/s, PCIe %.0f GB/s, host AdamW %.0f GB/s, %.4g us per "
              "collective call in a node and %.4g us across nodes "
              "(--latency-us), %s; per-rank bytes and calls from the "
              "compiled plan\n",
              100 * o.usable, 100 * o.efficiency, 100 * o.overlap,
              o.overlap > 0 ? "; plans compiled with overlap=true, whose arena "
                              "keeps collective operands until read"
                            : "",
              d.nvlinkGBs, d.interGBs, d.pcieGBs, o.hostAdamGBs, o.latencyInUs,
              o.latencyOutUs, buckets);
  if (o.offloadParams)
    std::printf("offload: fp32 master weights and AdamW moments in host "
                "memory, bf16 parameter copies on the device (offloaded "
                "grids compiled with precision=bf16 offload=params; "
                "--offload-params)\n");
  // --largest always searches E+Z-Offload.
  if (o.offload || !o.largest.empty())
    std::printf(
        "%s",
        o.offloadOverlap
            ? "offload step time: host work overlapped with the device's "
              "(--offload-overlap 1): gradient copies to the host behind the "
              "backward pass's compute, the host AdamW beside the parameter "
              "copies; adds max(0, gradient copies - backward compute) + "
              "max(host AdamW, parameter copies)\n"
            : "offload step time: host work after the device's, nothing "
              "overlapped (--offload-overlap 0); adds gradient copies + "
              "parameter copies + host AdamW\n");
}

//===----------------------------------------------------------------------===//
// --largest: the largest model of a family per combination
//===----------------------------------------------------------------------===//

/// A model family: the base configuration with one quantity scaled by x.
struct Family {
  std::string what; // "experts" or "layers"
  mlir::moe::ModelConfig base;
  int64_t unitEncoder = 0, unitDecoder = 0; // layers per unit of x
  int64_t limit = 0;                        // largest x tried

  mlir::moe::ModelConfig at(int64_t x, const Grid &g) const {
    mlir::moe::ModelConfig c = base;
    if (what == "experts") {
      c.numExperts = x * g.ep;
    } else {
      c.encoderLayers = x * unitEncoder;
      c.decoderLayers = x * unitDecoder;
    }
    return c;
  }
  std::string describe(int64_t x, const Grid &g) const {
    mlir::moe::ModelConfig c = at(x, g);
    return std::to_string(c.numExperts) + " experts, " +
           std::to_string(c.encoderLayers) + "+" +
           std::to_string(c.decoderLayers) + " layers";
  }
};

struct Largest {
  std::string combination;
  bool slicing = false; // tp > 1
  bool found = false;
  int64_t x = 0, parameters = 0, experts = 0, encoderLayers = 0,
          decoderLayers = 0, compiles = 0, grids = 0, rejected = 0;
  bool atLimit = false;
  Candidate best;     // at x, fits
  Candidate nextSize; // at x + 1, does not fit (empty at the limit)
  std::string why;    // when nothing fits
};

class LargestSearch {
public:
  LargestSearch(const Options &o, const Family &family, Compiler &compiler)
      : o(o), family(family), compiler(compiler) {}

  struct Found {
    int64_t x = 0;
    Candidate fit, next; // at x (fits) and x + 1 (does not; empty at limit)
  };
  /// The largest x of the family that fits grid g (with or without
  /// offload); nullopt when even x = 1 does not fit or is rejected, with
  /// `why` set.
  std::optional<Found>
  search(const Grid &g, bool offload, std::string &why, bool &atLimit);

private:
  Candidate probe(const Grid &g, bool offload, int64_t x) {
    const bool params = offload && o.offloadParams;
    auto key = std::make_tuple(g.dp, g.ep, g.tp, g.zero, x, params);
    auto it = cache.find(key);
    if (it == cache.end())
      it = cache.emplace(key, compiler.compile(family.at(x, g), g, params))
               .first;
    Candidate c;
    c.grid = g;
    c.offload = offload;
    c.report = it->second;
    if (c.report.rejected.empty())
      model(o, c);
    return c;
  }

  const Options &o;
  const Family &family;
  Compiler &compiler;
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, bool>,
           Report>
      cache;
};

std::optional<LargestSearch::Found>
LargestSearch::search(const Grid &g, bool offload, std::string &why,
                      bool &atLimit) {
  atLimit = false;
  Candidate first = probe(g, offload, 1);
  if (!first.report.rejected.empty()) {
    why = "rejected: " +
          first.report.rejected.substr(0, first.report.rejected.find('\n'));
    return std::nullopt;
  }
  if (!first.fits) {
    why = "the smallest size does not fit: largest term " + first.largestTerm;
    return std::nullopt;
  }
  const double capacity = o.device.memoryGiB * double(1ull << 30) * o.usable;
  const double hostCapacity = o.device.hostGiB * double(1ull << 30) * o.usable;
  std::vector<std::pair<int64_t, Candidate>> points = {{1, first}};
  std::pair<int64_t, Candidate> lo = {1, first};
  std::optional<std::pair<int64_t, Candidate>> hi;
  for (int iteration = 0;; ++iteration) {
    if (hi && hi->first == lo.first + 1)
      break;
    if (!hi && lo.first >= family.limit) {
      atLimit = true;
      break;
    }
    const int64_t top = hi ? hi->first - 1 : family.limit;
    int64_t x = 0;
    if (points.size() >= 2 && iteration < 8) {
      // Affine through the last two sizes compiled.
      const auto &[xa, a] = points[points.size() - 2];
      const auto &[xb, b] = points.back();
      double predicted = static_cast<double>(top);
      auto limitBy = [&](double va, double vb, double cap) {
        const double slope = (vb - va) / static_cast<double>(xb - xa);
        if (slope > 0)
          predicted = std::min(predicted,
                               static_cast<double>(xb) + (cap - vb) / slope);
      };
      limitBy(static_cast<double>(a.deviceBytes),
              static_cast<double>(b.deviceBytes), capacity);
      if (offload)
        limitBy(static_cast<double>(a.hostBytes),
                static_cast<double>(b.hostBytes), hostCapacity);
      x = predicted < 1 ? 1 : static_cast<int64_t>(predicted);
    } else {
      x = hi ? lo.first + (hi->first - lo.first) / 2 : 2 * lo.first;
    }
    x = std::clamp<int64_t>(x, lo.first + 1, top);
    Candidate c = probe(g, offload, x);
    if (!c.report.rejected.empty()) {
      // A size the partitioner rejects (e.g. experts not dividing a
      // group count): treat as not fitting, with the reason kept.
      why = "rejected at " + family.describe(x, g) + ": " +
            c.report.rejected.substr(0, c.report.rejected.find('\n'));
      c.fits = false;
    }
    if (c.report.rejected.empty())
      points.push_back({x, c});
    if (c.fits)
      lo = {x, c};
    else
      hi = std::make_pair(x, c);
  }
  Found found;
  found.x = lo.first;
  found.fit = lo.second;
  if (hi)
    found.next = hi->second;
  return found;
}

int runLargest(const Options &o, const mlir::moe::ModelConfig &config,
               Compiler &compiler) {
  const auto started = std::chrono::steady_clock::now();
  Family family;
  family.what = o.largest;
  family.base = config;
  if (o.largest == "experts") {
    if (config.numExperts == 0) {
      std::fprintf(stderr,
                   "moe-plan: error: --largest experts scales the experts of "
                   "the MoE layers, but '%s' has none (moe.num_experts = 0)\n",
                   o.model.c_str());
      return 2;
    }
    family.limit = 1 << 16; // experts per expert-parallel rank and layer
  } else {
    // The smallest (encoder, decoder) step in the base model's proportion
    // that keeps every unit's MoE layers the same (multiples of `every`).
    const int64_t g = std::gcd(config.encoderLayers, config.decoderLayers);
    int64_t a = config.encoderLayers / g, b = config.decoderLayers / g;
    const int64_t every = config.numExperts > 0 ? config.moeEvery : 1;
    int64_t m = 1;
    while ((a * m) % every != 0 || (b * m) % every != 0)
      ++m;
    family.unitEncoder = a * m;
    family.unitDecoder = b * m;
    // Up to about 1024 layers (deeper models are not trained; compiling
    // a 1020-layer Z-code M3 for 512 ranks takes 11 s and 0.4 GiB).
    family.limit = 1024 / (a * m + b * m) + 1;
  }

  struct Row {
    const char *name;
    std::vector<int64_t> zeros;
    bool offload;
  };
  std::vector<int64_t> zeroed, sharded;
  for (int64_t z : o.zero)
    (z == 0 ? zeroed : sharded).push_back(z);
  std::vector<Row> rows;
  if (!zeroed.empty())
    rows.push_back({"E+D", zeroed, false});
  if (!sharded.empty()) {
    rows.push_back({"E+Z", sharded, false});
    rows.push_back({"E+Z-Offload", sharded, true});
  }
  std::vector<int64_t> tpOne, tpMany;
  for (int64_t t : o.tp)
    (t == 1 ? tpOne : tpMany).push_back(t);

  LargestSearch search(o, family, compiler);
  std::vector<Largest> answers;
  for (const Row &row : rows)
    for (bool slicing : {false, true}) {
      const std::vector<int64_t> &tps = slicing ? tpMany : tpOne;
      if (tps.empty())
        continue;
      Largest answer;
      answer.combination = row.name;
      answer.slicing = slicing;
      const int64_t before = compiler.compiles;
      for (int64_t tp : tps) {
        if (o.devices % tp != 0)
          continue;
        for (int64_t ep : o.ep.empty() ? divisorsOf(o.devices / tp) : o.ep) {
          if (o.devices % (ep * tp) != 0)
            continue;
          const int64_t dp = o.devices / (ep * tp);
          for (int64_t zero : row.zeros) {
            if (zero > 0 && dp * ep == 1)
              continue; // nothing to shard
            Grid g{dp, ep, tp, zero};
            ++answer.grids;
            std::string why;
            bool atLimit = false;
            auto found = search.search(g, row.offload, why, atLimit);
            if (!found) {
              answer.rejected += why.rfind("rejected", 0) == 0;
              if (answer.why.empty() || why.rfind("rejected", 0) != 0)
                answer.why = why;
              continue;
            }
            const int64_t foundX = found->x;
            mlir::moe::ModelConfig c = family.at(foundX, g);
            const int64_t parameters = compiler.parameterCount(c);
            const bool better =
                !answer.found || parameters > answer.parameters ||
                (parameters == answer.parameters &&
                 found->fit.stepS() < answer.best.stepS());
            if (!better)
              continue;
            answer.found = true;
            answer.x = foundX;
            answer.parameters = parameters;
            answer.experts = c.numExperts;
            answer.encoderLayers = c.encoderLayers;
            answer.decoderLayers = c.decoderLayers;
            answer.best = found->fit;
            answer.nextSize = found->next;
            answer.atLimit = atLimit;
          }
        }
      }
      if (answer.found) {
        // Model FLOPs of the step: the unpartitioned program's.
        Report whole =
            compiler.compile(family.at(answer.x, answer.best.grid), Grid{});
        answer.best.modelFlops = whole.flops;
      }
      answer.compiles = compiler.compiles - before;
      answers.push_back(answer);
    }
  const double seconds = std::chrono::duration<double>(
                             std::chrono::steady_clock::now() - started)
                             .count();

  printAssumptions(o, config.name);
  std::printf("largest %s of %s (the family scales %s), verified: the size "
              "found fits, the next size does not\n",
              "model", config.name.c_str(),
              o.largest == "experts"
                  ? "the experts per MoE layer, a multiple of ep"
                  : "the encoder and decoder layers in proportion");
  std::printf("%-12s %-6s %-4s %-4s %-3s %-4s %9s %9s %16s %8s %10s %9s %9s "
              "%6s\n",
              "combination", "tp", "dp", "ep", "tp", "zero", "experts",
              "layers", "parameters", "x E+D", "device GiB", "host GiB",
              "step s", "MFU %");
  const Largest *reference = nullptr;
  for (const Largest &a : answers)
    if (a.combination == std::string("E+D") && !a.slicing && a.found)
      reference = &a;
  bool any = false;
  for (const Largest &a : answers) {
    if (!a.found) {
      std::printf("%-12s %-6s nothing fits (%lld grids, %lld rejected): %s\n",
                  a.combination.c_str(), a.slicing ? ">1" : "1",
                  (long long)a.grids, (long long)a.rejected, a.why.c_str());
      continue;
    }
    any = true;
    const Grid &g = a.best.grid;
    char ratio[16] = "-";
    if (reference)
      std::snprintf(ratio, sizeof(ratio), "%.2f",
                    double(a.parameters) / double(reference->parameters));
    std::printf("%-12s %-6s %-4lld %-4lld %-3lld %-4lld %9lld %4lld+%-4lld "
                "%16lld %8s %10s %9s %9.3f %6.1f%s\n",
                a.combination.c_str(), a.slicing ? ">1" : "1",
                (long long)g.dp, (long long)g.ep, (long long)g.tp,
                (long long)g.zero, (long long)a.experts,
                (long long)a.encoderLayers, (long long)a.decoderLayers,
                (long long)a.parameters, ratio, gib(a.best.deviceBytes).c_str(),
                gib(a.best.hostBytes).c_str(), a.best.stepS(),
                100 * a.best.mfu(o.device),
                a.atLimit ? "  (search limit reached)" : "");
  }
  int64_t total = 0;
  for (const Largest &a : answers)
    total += a.compiles;
  std::printf("moe-plan: %lld compiles in %.1f s\n", (long long)total,
              seconds);

  if (!o.json.empty() && !writeJson(o.json, [&](llvm::json::OStream &json) {
        json.array([&] {
          for (const Largest &a : answers)
            json.object([&] {
              json.attribute("combination", a.combination);
              json.attribute("tensor_slicing", a.slicing);
              json.attribute("found", a.found);
              json.attribute("grids", a.grids);
              json.attribute("compiles", a.compiles);
              if (!a.found) {
                json.attribute("why", a.why);
                return;
              }
              const Candidate &c = a.best;
              json.attribute("dp", c.grid.dp);
              json.attribute("ep", c.grid.ep);
              json.attribute("tp", c.grid.tp);
              json.attribute("zero", c.grid.zero);
              json.attribute("offload", c.offload);
              json.attribute("scale", a.x);
              json.attribute("num_experts", a.experts);
              json.attribute("encoder_layers", a.encoderLayers);
              json.attribute("decoder_layers", a.decoderLayers);
              json.attribute("parameters", a.parameters);
              json.attribute("at_search_limit", a.atLimit);
              writeMemory(json, c);
              json.attribute("flops", c.report.flops);
              json.attribute("model_flops", c.modelFlops);
              json.attribute("step_seconds", c.stepS());
              json.attribute("offload_seconds", c.offloadS);
              json.attribute("mfu", c.mfu(o.device));
              if (!a.atLimit && a.nextSize.report.rejected.empty()) {
                json.attribute("next_device_bytes", a.nextSize.deviceBytes);
                json.attribute("next_host_bytes", a.nextSize.hostBytes);
              }
            });
        });
      }))
    return 1;
  std::fflush(stdout);
  if (!any) {
    std::fprintf(stderr, "moe-plan: no size of %s fits %lld x %s\n",
                 config.name.c_str(), (long long)o.devices,
                 o.device.name.c_str());
    return 1;
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  Options o;
  std::optional<double> deviceMemory, hostMemory;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> const char * {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    auto number = [&](int64_t low, int64_t &out) {
      const char *v = value();
      long long parsed = 0;
      if (!v || !llvm::to_integer(v, parsed, 10) || parsed < low)
        return false;
      out = parsed;
      return true;
    };
    auto real = [&](double &out) {
      const char *v = value();
      return v && llvm::to_float(v, out);
    };
    auto found = [&]() -> std::string {
      return i < argc && i > 0 ? std::string(argv[i]) : std::string();
    };
    if (arg == "--devices") {
      if (!number(1, o.devices))
        return usage("--devices expects a positive count");
    } else if (arg == "--gpus-per-node") {
      if (!number(1, o.gpusPerNode))
        return usage("--gpus-per-node expects a positive count");
    } else if (arg == "--top") {
      if (!number(1, o.top))
        return usage("--top expects a positive count");
    } else if (arg == "--device") {
      const char *v = value();
      bool known = false;
      for (const DeviceSpec &d : kDevices)
        if (v && d.name == v) {
          o.device = d;
          known = true;
        }
      if (!known)
        return usage(std::string("--device expects one of the devices "
                                 "below, found '") +
                     (v ? v : "") + "'");
    } else if (arg == "--efficiency" || arg == "--mfu") {
      if (!real(o.efficiency) || !(o.efficiency > 0 && o.efficiency <= 1))
        return usage(arg + " expects the fraction of peak the matrix "
                           "products reach, in (0, 1]");
    } else if (arg == "--overlap") {
      if (!real(o.overlap) || !(o.overlap >= 0 && o.overlap <= 1))
        return usage("--overlap expects the fraction of compute time that "
                     "hides communication, in [0, 1]");
    } else if (arg == "--bucket-mb") {
      if (!real(o.bucketMb) || !(o.bucketMb >= 0 && o.bucketMb <= 1048576))
        return usage("--bucket-mb expects a bucket size in MiB in [0, "
                     "1048576] (0: one all-reduce per gradient), found '" +
                     found() + "'");
    } else if (arg == "--latency-us") {
      const char *v = value();
      auto [in, out] = llvm::StringRef(v ? v : "").split(',');
      if (in.empty() || out.empty() || !llvm::to_float(in, o.latencyInUs) ||
          !llvm::to_float(out, o.latencyOutUs) || !(o.latencyInUs >= 0) ||
          !(o.latencyOutUs >= 0) || o.latencyInUs > 1e6 || o.latencyOutUs > 1e6)
        return usage("--latency-us expects two non-negative numbers IN,OUT "
                     "(microseconds per collective call inside a node and "
                     "across nodes), found '" +
                     std::string(v ? v : "") + "'");
    } else if (arg == "--device-memory" || arg == "--host-memory") {
      double gibs = 0;
      if (!real(gibs) || !(gibs > 0 && gibs < 1e9))
        return usage(arg + " expects a positive size in GiB, found '" +
                     found() + "'");
      (arg == "--device-memory" ? deviceMemory : hostMemory) = gibs;
    } else if (arg == "--largest") {
      const char *v = value();
      o.largest = v ? v : "";
      if (o.largest != "experts" && o.largest != "layers")
        return usage("--largest expects 'experts' or 'layers' (the quantity "
                     "to scale), found '" +
                     o.largest + "'");
    } else if (arg == "--zero") {
      const char *v = value();
      o.zero.clear();
      for (llvm::StringRef item : llvm::split(v ? v : "", ',')) {
        long long stage = 0;
        if (!llvm::to_integer(item, stage, 10) || stage < 0 || stage > 2)
          return usage("--zero expects stages among 0,1,2, found '" +
                       item.str() + "'");
        o.zero.push_back(stage);
      }
    } else if (arg == "--tp" || arg == "--ep") {
      const char *v = value();
      std::vector<int64_t> &list = arg == "--tp" ? o.tp : o.ep;
      list.clear();
      for (llvm::StringRef item : llvm::split(v ? v : "", ',')) {
        long long size = 0;
        if (!llvm::to_integer(item, size, 10) || size < 1)
          return usage(arg + " expects positive sizes such as 1,2,4, found '" +
                       item.str() + "'");
        list.push_back(size);
      }
    } else if (arg == "--offload") {
      o.offload = true;
    } else if (arg == "--offload-params") {
      o.offload = o.offloadParams = true;
    } else if (arg == "--offload-overlap") {
      const char *given = value();
      const std::string v = given ? given : "";
      if (v != "0" && v != "1")
        return usage("--offload-overlap expects 0 (the offload's host "
                     "transfers and AdamW in series) or 1 (overlapped with "
                     "the device's work, the runtime's default), found '" +
                     v + "'");
      o.offloadOverlap = v == "1";
    } else if (arg == "--json") {
      const char *v = value();
      if (!v)
        return usage("--json expects a file");
      o.json = v;
    } else if (!arg.empty() && arg[0] == '-') {
      return usage("unknown option '" + arg + "'");
    } else if (o.model.empty()) {
      o.model = arg;
    } else {
      return usage("expected one model file, found a second '" + arg + "'");
    }
  }
  if (o.model.empty())
    return usage("no model file given");
  if (o.devices == 0)
    return usage("--devices N is required");
  if (!o.json.empty()) {
    // Checked before minutes of compiling, not after.
    llvm::SmallString<256> directory(o.json);
    llvm::sys::path::remove_filename(directory);
    if (directory.empty())
      directory = ".";
    if (llvm::sys::fs::is_directory(o.json) ||
        !llvm::sys::fs::is_directory(directory) ||
        llvm::sys::fs::access(directory, llvm::sys::fs::AccessMode::Write)) {
      std::fprintf(stderr,
                   "moe-plan: error: --json: cannot write '%s' (expected a "
                   "file in an existing, writable directory)\n",
                   o.json.c_str());
      return 2;
    }
  }
  if (deviceMemory)
    o.device.memoryGiB = *deviceMemory;
  if (hostMemory)
    o.device.hostGiB = *hostMemory;
  if (deviceMemory || hostMemory)
    o.device.name += " (memory given)";

  auto text = llvm::MemoryBuffer::getFile(o.model);
  if (!text)
    return std::fprintf(stderr, "moe-plan: error: cannot read '%s'\n",
                        o.model.c_str()),
           1;
  llvm::Expected<mlir::moe::ModelConfig> config =
      mlir::moe::parseModelConfig((*text)->getBuffer(), o.model);
  if (!config) {
    std::fprintf(stderr, "moe-plan: error: %s\n",
                 llvm::toString(config.takeError()).c_str());
    return 1;
  }
  mlir::DialectRegistry registry;
  mlir::moe::registerAllDialects(registry);
  mlir::moe::registerAllPasses();
  llvm::SmallString<128> reportPath;
  if (llvm::sys::fs::createTemporaryFile("moe-plan", "json", reportPath)) {
    std::fprintf(stderr, "moe-plan: error: cannot create a temporary file\n");
    return 1;
  }
  struct Remove {
    llvm::SmallString<128> &path;
    ~Remove() { llvm::sys::fs::remove(path); }
  } remove{reportPath};
  Compiler compiler(registry, reportPath.str().str(), o.bucketMb,
                    o.overlap > 0);

  if (!o.largest.empty())
    return runLargest(o, *config, compiler);

  // Model FLOPs of one step: the unpartitioned program's matrix FLOPs.
  const Report whole = compiler.compile(*config, Grid{});
  std::vector<Candidate> candidates;
  for (int64_t ep : o.ep.empty() ? divisorsOf(o.devices) : o.ep)
    for (int64_t tp : o.tp) {
      if (o.devices % (ep * tp) != 0)
        continue;
      const int64_t dp = o.devices / (ep * tp);
      for (int64_t zero : o.zero) {
        if (zero > 0 && dp * ep == 1)
          continue; // nothing to shard
        Candidate c;
        c.grid = Grid{dp, ep, tp, zero};
        c.report = compiler.compile(*config, c.grid);
        c.modelFlops = whole.flops;
        for (bool offload : {false, true}) {
          if (offload && !o.offload)
            continue;
          Candidate v = c;
          v.offload = offload;
          if (offload && o.offloadParams)
            v.report = compiler.compile(*config, c.grid, true);
          if (v.report.rejected.empty())
            model(o, v);
          candidates.push_back(v);
        }
      }
    }

  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate &a, const Candidate &b) {
                     const int ra = !a.report.rejected.empty() ? 2
                                    : a.fits                   ? 0
                                                               : 1;
                     const int rb = !b.report.rejected.empty() ? 2
                                    : b.fits                   ? 0
                                                               : 1;
                     if (ra != rb)
                       return ra < rb;
                     if (ra == 0)
                       return a.stepS() < b.stepS();
                     return a.deviceBytes < b.deviceBytes;
                   });
  const DeviceSpec &d = o.device;
  printAssumptions(o, config->name);
  std::printf("%-4s %-4s %-3s %-4s %-7s %10s %9s %10s %10s %10s %6s  %s\n",
              "dp", "ep", "tp", "zero", "offload", "device GiB", "host GiB",
              "step ms", "compute", "comm", "MFU %", "verdict");
  int64_t fitting = 0, rejected = 0, shown = 0;
  for (const Candidate &c : candidates) {
    fitting += c.report.rejected.empty() && c.fits;
    rejected += !c.report.rejected.empty();
  }
  for (const Candidate &c : candidates) {
    if (shown++ >= o.top)
      break;
    const Grid &g = c.grid;
    if (!c.report.rejected.empty()) {
      std::string reason =
          c.report.rejected.substr(0, c.report.rejected.find('\n'));
      std::printf("%-4lld %-4lld %-3lld %-4lld %-7s %10s %9s %10s %10s %10s "
                  "%6s  rejected: %s\n",
                  (long long)g.dp, (long long)g.ep, (long long)g.tp,
                  (long long)g.zero, c.offload ? "yes" : "no", "-", "-", "-",
                  "-", "-", "-", reason.c_str());
      continue;
    }
    std::printf("%-4lld %-4lld %-3lld %-4lld %-7s %10s %9s %10.2f %10.2f "
                "%10.2f %6.1f  %s\n",
                (long long)g.dp, (long long)g.ep, (long long)g.tp,
                (long long)g.zero, c.offload ? "yes" : "no",
                gib(c.deviceBytes).c_str(), gib(c.hostBytes).c_str(),
                1e3 * c.stepS(), 1e3 * c.computeS, 1e3 * c.commS,
                100 * c.mfu(d),
                c.fits ? "fits"
                       : ("does not fit: largest term " + c.largestTerm)
                             .c_str());
  }
  std::printf("moe-plan: %zu grids: %lld fit, %lld do not, %lld rejected by "
              "the partitioner%s\n",
              candidates.size(), (long long)fitting,
              (long long)(candidates.size() - fitting - rejected),
              (long long)rejected,
              static_cast<int64_t>(candidates.size()) > o.top
                  ? " (--top shows more)"
                  : "");
  if (!o.json.empty() && !writeJson(o.json, [&](llvm::json::OStream &json) {
        json.array([&] {
          for (const Candidate &c : candidates)
            json.object([&] {
              json.attribute("dp", c.grid.dp);
              json.attribute("ep", c.grid.ep);
              json.attribute("tp", c.grid.tp);
              json.attribute("zero", c.grid.zero);
              json.attribute("offload", c.offload);
              if (!c.report.rejected.empty()) {
                json.attribute("rejected", c.report.rejected);
                return;
              }
              writeMemory(json, c);
              json.attribute("fits", c.fits);
              json.attribute("largest_term", c.largestTerm);
              json.attribute("flops", c.report.flops);
              json.attribute("model_flops", c.modelFlops);
              json.attribute("step_seconds", c.stepS());
              json.attribute("compute_seconds", c.computeS);
              json.attribute("comm_seconds", c.commS);
              json.attribute("exposed_comm_seconds", c.exposedCommS);
              json.attribute("offload_seconds", c.offloadS);
              json.attribute("backward_flops", c.report.backwardFlops);
              json.attribute("backward_compute_seconds", c.backwardS);
              json.attribute("gradient_copy_seconds", c.gradientCopyS);
              json.attribute("parameter_copy_seconds", c.parameterCopyS);
              json.attribute("host_adamw_seconds", c.hostAdamS);
              json.attribute("mfu", c.mfu(d));
              json.attributeObject("bytes_sent", [&] {
                std::map<std::string, int64_t> byKind;
                for (const Traffic &t : c.report.traffic)
                  byKind[t.kind] += t.bytes;
                for (const auto &[kind, bytes] : byKind)
                  json.attribute(kind, bytes);
              });
              json.attributeArray("bytes_sent_by_axes", [&] {
                for (const Traffic &t : c.report.traffic)
                  json.object([&] {
                    json.attribute("kind", t.kind);
                    json.attributeArray("axes", [&] {
                      for (int axis : t.axes)
                        json.value(axis);
                    });
                    json.attribute("bytes", t.bytes);
                    json.attribute("calls", t.calls);
                  });
              });
            });
        });
      }))
    return 1;
  std::fflush(stdout);
  if (fitting == 0) {
    std::fprintf(stderr, "moe-plan: no grid of %lld x %s fits %s\n",
                 (long long)o.devices, d.name.c_str(), config->name.c_str());
    return 1;
  }
  return 0;
}
