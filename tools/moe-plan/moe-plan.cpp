//===- moe-plan.cpp - Which grid fits, and how fast, before launch --------===//
//
//   moe-plan MODEL.json --devices N [--device a100-40g] [--gpus-per-node 8]
//            [--mfu 0.4] [--zero 0,1,2] [--offload] [--top K] [--json FILE]
//
// Enumerates the partitionings of MODEL over N devices (dp x ep x tp with
// dp*ep*tp = N, ZeRO stages, with and without optimizer-state offload),
// compiles each one with the real pipeline (moe-training-pipeline) and takes
// its per-rank numbers from moe-partition-report (the bytes the runtime
// allocates and the bytes each collective sends: exact), then:
//   - memory: device bytes = persistent region + arena, minus the optimizer
//     state when it is offloaded (then host bytes); a grid fits when that
//     is at most the device's memory times the usable fraction (0.9), else
//     the report names the largest term;
//   - step time (no overlap assumed, so an upper bound): matrix FLOPs /
//     (peak x MFU) + each collective kind's bytes over NVLink when its
//     group fits in a node, else over the inter-node link + with offload
//     the gradient and parameter copies over PCIe and the host AdamW pass.
// Grids the partitioner rejects (experts not divisible by ep, heads by tp,
// batch by dp*ep, ...) are listed with its reason. The assumptions are
// printed with every answer. Exit status 1 when nothing fits, 2 on a bad
// command line.
//
//===----------------------------------------------------------------------===//
#include "compiler/InitAll.h"
#include "compiler/ModelBuilder.h"
#include "compiler/ModelConfig.h"

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
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace {

struct DeviceSpec {
  const char *name;
  double memoryGiB, peakTflops, nvlinkGBs, interGBs, pcieGBs;
};

// Dense bf16/fp16 tensor-core peaks and per-GPU link bandwidths (one
// direction) from the vendors' data sheets; inter-node: one HDR/NDR
// InfiniBand adapter per GPU.
constexpr DeviceSpec kDevices[] = {
    {"v100-32g", 32, 125, 150, 12.5, 16},
    {"a100-40g", 40, 312, 300, 25, 32},
    {"a100-80g", 80, 312, 300, 25, 32},
    {"h100-80g", 80, 989, 450, 50, 64},
    {"h200-141g", 141, 989, 450, 50, 64},
};

struct Options {
  std::string model, json;
  int64_t devices = 0, gpusPerNode = 8, top = 10;
  const DeviceSpec *device = &kDevices[1];
  double mfu = 0.4, usable = 0.9, hostAdamGBs = 100;
  std::vector<int64_t> zero = {0, 1, 2};
  std::vector<int64_t> tp = {1, 2, 4, 8}, ep; // ep empty: every divisor
  bool offload = false;
};

const char *kUsage =
    "usage: moe-plan MODEL.json --devices N [--device NAME] [--gpus-per-node "
    "G] [--mfu F]\n"
    "                [--zero 0,1,2] [--tp 1,2,4,8] [--ep LIST] [--offload] "
    "[--top K] [--json FILE]\n"
    "devices: v100-32g, a100-40g, a100-80g, h100-80g, h200-141g\n";

int usage(const std::string &why) {
  std::fprintf(stderr, "moe-plan: %s\n%s", why.c_str(), kUsage);
  return 2;
}

struct Candidate {
  int64_t dp = 1, ep = 1, tp = 1, zero = 0;
  bool offload = false;
  std::string rejected; // the partitioner's reason, when it rejects
  // From the partition report.
  int64_t parameterBytes = 0, gradientBytes = 0, optimizerBytes = 0,
          batchBytes = 0, activationBytes = 0, persistentBytes = 0;
  double flops = 0;
  std::map<std::string, int64_t> bytesSent;
  // Derived.
  int64_t deviceBytes = 0, hostBytes = 0;
  bool fits = false;
  std::string largestTerm;
  double computeS = 0, commS = 0, offloadS = 0;
  double stepS() const { return computeS + commS + offloadS; }
};

std::string gib(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f", bytes / double(1ull << 30));
  return text;
}

/// Compiles the model for one grid and reads the partition report.
void evaluate(mlir::MLIRContext &context, const mlir::moe::ModelConfig &config,
              const std::string &reportPath, Candidate &c) {
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
      "moe-training-pipeline{dp=" + std::to_string(c.dp) +
      " ep=" + std::to_string(c.ep) + " tp=" + std::to_string(c.tp) +
      " zero=" + std::to_string(c.zero) +
      "},moe-partition-report{quiet=true json=" + reportPath + "}";
  if (mlir::failed(mlir::parsePassPipeline(pipeline, pm))) {
    c.rejected = "cannot build the pipeline '" + pipeline + "'";
    return;
  }
  if (mlir::failed(pm.run(*module))) {
    c.rejected = diagnostics.empty() ? "the pipeline failed" : diagnostics;
    return;
  }
  auto buffer = llvm::MemoryBuffer::getFile(reportPath);
  if (!buffer) {
    c.rejected = "the partition report was not written";
    return;
  }
  llvm::Expected<llvm::json::Value> parsed =
      llvm::json::parse((*buffer)->getBuffer());
  if (!parsed) {
    c.rejected = "the partition report is not JSON: " +
                 llvm::toString(parsed.takeError()) + " in '" +
                 (*buffer)->getBuffer().substr(0, 80).str() + "'";
    return;
  }
  const llvm::json::Object *report = parsed->getAsObject();
  auto integer = [&](const char *key) {
    return report->getInteger(key).value_or(0);
  };
  c.parameterBytes = integer("parameter_bytes");
  c.gradientBytes = integer("gradient_bytes");
  c.optimizerBytes = integer("optimizer_state_bytes");
  c.batchBytes = integer("batch_bytes");
  c.activationBytes = integer("activation_bytes");
  c.persistentBytes = integer("persistent_bytes");
  c.flops = static_cast<double>(integer("flops"));
  if (const llvm::json::Object *collectives = report->getObject("collectives"))
    for (const auto &[kind, value] : *collectives)
      if (const llvm::json::Object *entry = value.getAsObject())
        c.bytesSent[kind.str()] = entry->getInteger("bytes_sent").value_or(0);
}

void model(const Options &o, Candidate &c) {
  const DeviceSpec &d = *o.device;
  c.deviceBytes = c.persistentBytes + c.activationBytes;
  if (c.offload) {
    c.deviceBytes -= c.optimizerBytes;
    c.hostBytes = c.optimizerBytes;
  }
  const double capacity = d.memoryGiB * double(1ull << 30) * o.usable;
  c.fits = static_cast<double>(c.deviceBytes) <= capacity;
  std::vector<std::pair<int64_t, std::string>> terms = {
      {c.parameterBytes, "parameters"},
      {c.offload ? 0 : c.optimizerBytes, "optimizer state"},
      {c.activationBytes, "activations and gradients (arena)"},
      {c.batchBytes, "batch"}};
  c.largestTerm = std::max_element(terms.begin(), terms.end())->second;
  c.computeS = c.flops / (d.peakTflops * 1e12 * o.mfu);
  const int64_t ranks = c.dp * c.ep * c.tp;
  // Groups of the expert all-to-all span ep x tp consecutive ranks; the
  // reductions span the data-parallel (and expert) ranks.
  const bool a2aInNode = c.ep * c.tp <= o.gpusPerNode;
  const bool reduceInNode = ranks <= o.gpusPerNode;
  c.commS = 0;
  for (const auto &[kind, bytes] : c.bytesSent) {
    const bool inNode = kind == "all_to_all" ? a2aInNode : reduceInNode;
    c.commS += static_cast<double>(bytes) /
               ((inNode ? d.nvlinkGBs : d.interGBs) * 1e9);
  }
  if (c.offload)
    c.offloadS = 2.0 * static_cast<double>(c.parameterBytes) /
                     (d.pcieGBs * 1e9) +
                 2.0 * static_cast<double>(c.optimizerBytes) /
                     (o.hostAdamGBs * 1e9);
}

std::vector<int64_t> divisorsOf(int64_t n) {
  std::vector<int64_t> out;
  for (int64_t d = 1; d <= n; ++d)
    if (n % d == 0)
      out.push_back(d);
  return out;
}

} // namespace

int main(int argc, char **argv) {
  Options o;
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
      o.device = nullptr;
      for (const DeviceSpec &d : kDevices)
        if (v && d.name == std::string(v))
          o.device = &d;
      if (!o.device)
        return usage(std::string("--device expects one of the devices "
                                 "below, found '") +
                     (v ? v : "") + "'");
    } else if (arg == "--mfu") {
      const char *v = value();
      if (!v || !llvm::to_float(v, o.mfu) || !(o.mfu > 0 && o.mfu <= 1))
        return usage("--mfu expects a fraction in (0, 1]");
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
  mlir::MLIRContext context(registry);
  context.loadAllAvailableDialects();
  llvm::SmallString<128> reportPath;
  if (llvm::sys::fs::createTemporaryFile("moe-plan", "json", reportPath)) {
    std::fprintf(stderr, "moe-plan: error: cannot create a temporary file\n");
    return 1;
  }

  std::vector<Candidate> candidates;
  for (int64_t ep : o.ep.empty() ? divisorsOf(o.devices) : o.ep)
    for (int64_t tp : o.tp) {
      if (o.devices % (ep * tp) != 0)
        continue;
      const int64_t dp = o.devices / (ep * tp);
      for (int64_t zero : o.zero) {
        if (zero > 0 && dp == 1)
          continue; // nothing to shard
        Candidate c;
        c.dp = dp;
        c.ep = ep;
        c.tp = tp;
        c.zero = zero;
        evaluate(context, *config, reportPath.str().str(), c);
        for (bool offload : {false, true}) {
          if (offload && !o.offload)
            continue;
          Candidate v = c;
          v.offload = offload;
          if (v.rejected.empty())
            model(o, v);
          candidates.push_back(v);
        }
      }
    }
  llvm::sys::fs::remove(reportPath);

  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate &a, const Candidate &b) {
                     const int ra = !a.rejected.empty() ? 2 : a.fits ? 0 : 1;
                     const int rb = !b.rejected.empty() ? 2 : b.fits ? 0 : 1;
                     if (ra != rb)
                       return ra < rb;
                     if (ra == 0)
                       return a.stepS() < b.stepS();
                     return a.deviceBytes < b.deviceBytes;
                   });
  const DeviceSpec &d = *o.device;
  std::printf("moe-plan: %s on %lld x %s (%.0f GiB, %.0f TFLOP/s bf16 peak), "
              "%lld GPUs per node\n",
              config->name.c_str(), (long long)o.devices, d.name, d.memoryGiB,
              d.peakTflops, (long long)o.gpusPerNode);
  std::printf("assumptions: usable memory %.0f %%, MFU %.0f %%, NVLink %.0f "
              "GB/s, inter-node %.0f GB/s, PCIe %.0f GB/s, host AdamW %.0f "
              "GB/s; no overlap (upper bound); per-rank bytes from the "
              "compiled plan\n",
              100 * o.usable, 100 * o.mfu, d.nvlinkGBs, d.interGBs, d.pcieGBs,
              o.hostAdamGBs);
  std::printf("%-4s %-4s %-3s %-4s %-7s %10s %9s %10s %10s %10s  %s\n",
              "dp", "ep", "tp", "zero", "offload", "device GiB", "host GiB",
              "step ms", "compute", "comm", "verdict");
  int64_t fitting = 0, rejected = 0, shown = 0;
  for (const Candidate &c : candidates) {
    fitting += c.rejected.empty() && c.fits;
    rejected += !c.rejected.empty();
  }
  for (const Candidate &c : candidates) {
    if (shown++ >= o.top)
      break;
    if (!c.rejected.empty()) {
      std::string reason = c.rejected.substr(0, c.rejected.find('\n'));
      std::printf("%-4lld %-4lld %-3lld %-4lld %-7s %10s %9s %10s %10s %10s  "
                  "rejected: %s\n",
                  (long long)c.dp, (long long)c.ep, (long long)c.tp,
                  (long long)c.zero, c.offload ? "yes" : "no", "-", "-", "-",
                  "-", "-", reason.c_str());
      continue;
    }
    std::printf("%-4lld %-4lld %-3lld %-4lld %-7s %10s %9s %10.2f %10.2f %10.2f  "
                "%s\n",
                (long long)c.dp, (long long)c.ep, (long long)c.tp,
                (long long)c.zero, c.offload ? "yes" : "no",
                gib(c.deviceBytes).c_str(), gib(c.hostBytes).c_str(),
                1e3 * c.stepS(), 1e3 * c.computeS, 1e3 * c.commS,
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
  if (!o.json.empty()) {
    std::error_code ec;
    llvm::raw_fd_ostream out(o.json, ec);
    if (ec) {
      std::fprintf(stderr, "moe-plan: error: cannot write '%s'\n",
                   o.json.c_str());
      return 1;
    }
    llvm::json::OStream json(out, 1);
    json.array([&] {
      for (const Candidate &c : candidates)
        json.object([&] {
          json.attribute("dp", c.dp);
          json.attribute("ep", c.ep);
          json.attribute("tp", c.tp);
          json.attribute("zero", c.zero);
          json.attribute("offload", c.offload);
          if (!c.rejected.empty()) {
            json.attribute("rejected", c.rejected);
            return;
          }
          json.attribute("device_bytes", c.deviceBytes);
          json.attribute("host_bytes", c.hostBytes);
          json.attribute("fits", c.fits);
          json.attribute("largest_term", c.largestTerm);
          json.attribute("step_seconds", c.stepS());
          json.attribute("compute_seconds", c.computeS);
          json.attribute("comm_seconds", c.commS);
          json.attribute("offload_seconds", c.offloadS);
        });
    });
    out << "\n";
  }
  std::fflush(stdout);
  if (fitting == 0) {
    std::fprintf(stderr, "moe-plan: no grid of %lld x %s fits %s\n",
                 (long long)o.devices, d.name, config->name.c_str());
    return 1;
  }
  return 0;
}
