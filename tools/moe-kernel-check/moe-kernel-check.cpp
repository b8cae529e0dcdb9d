//===- moe-kernel-check.cpp - Test and inspect the generated MoE kernels ---===//
//
//   moe-kernel-check [--emit-ptx DIR] [--sm 80,90] [--print-source]
//                    [--check] [--tokens S --top-k K --model M --experts E
//                     --capacity C --seed N]
//
// --check lowers the generated kernels (compiler/KernelCodegen.h) for the
// host, runs them in the JIT over every (block, thread) pair of a launch,
// on random routing with dropped tokens, and compares with the CPU kernels
// (moert/kernels/DispatchCombine.h): dispatch and the dispatch gradient bit
// for bit, combine to fp32 rounding. --emit-ptx writes the PTX for each SM
// (moe_kernels.sm_80.ptx, ...) for inspection and ptxas. Exit status 1 on a
// mismatch or an error, 2 on a bad command line.
//
//===----------------------------------------------------------------------===//
#include "compiler/KernelCodegen.h"

#include "moert/kernels/DispatchCombine.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"

#include "llvm/Support/TargetSelect.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Options {
  std::string emitPtx;
  std::vector<int> sms = {80, 90};
  bool printSource = false, check = false;
  int64_t tokens = 37, topK = 2, model = 19, experts = 5, capacity = 9;
  uint32_t seed = 1;
};

const char *kUsage =
    "usage: moe-kernel-check [--emit-ptx DIR] [--sm 80,90] [--print-source]\n"
    "                        [--check] [--tokens S] [--top-k K] [--model M]\n"
    "                        [--experts E] [--capacity C] [--seed N]\n";

bool parseInt(const char *text, int64_t low, int64_t &out) {
  char *end = nullptr;
  long long v = std::strtoll(text, &end, 10);
  if (!end || *end || end == text || v < low)
    return false;
  out = v;
  return true;
}

bool parse(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> const char * {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    auto bad = [&](const std::string &why) {
      std::fprintf(stderr, "moe-kernel-check: %s\n%s", why.c_str(), kUsage);
      return false;
    };
    if (arg == "--print-source") {
      o.printSource = true;
    } else if (arg == "--check") {
      o.check = true;
    } else if (arg == "--emit-ptx") {
      const char *v = value();
      if (!v)
        return bad("--emit-ptx expects a directory");
      o.emitPtx = v;
    } else if (arg == "--sm") {
      const char *v = value();
      if (!v)
        return bad("--sm expects a list like 80,90");
      o.sms.clear();
      std::stringstream list(v);
      std::string item;
      while (std::getline(list, item, ',')) {
        int64_t sm = 0;
        if (!parseInt(item.c_str(), 50, sm) || sm > 200)
          return bad("--sm expects SM numbers such as 80,90, found '" + item +
                     "'");
        o.sms.push_back(static_cast<int>(sm));
      }
    } else if (arg == "--tokens" || arg == "--top-k" || arg == "--model" ||
               arg == "--experts" || arg == "--capacity" || arg == "--seed") {
      const char *v = value();
      int64_t number = 0;
      if (!v || !parseInt(v, arg == "--seed" ? 0 : 1, number))
        return bad(arg + " expects a positive integer, found '" +
                   (v ? v : "") + "'");
      if (arg == "--tokens")
        o.tokens = number;
      else if (arg == "--top-k")
        o.topK = number;
      else if (arg == "--model")
        o.model = number;
      else if (arg == "--experts")
        o.experts = number;
      else if (arg == "--capacity")
        o.capacity = number;
      else
        o.seed = static_cast<uint32_t>(number);
    } else {
      return bad("unknown argument '" + arg + "'");
    }
  }
  if (o.topK > o.experts)
    return (std::fprintf(stderr, "moe-kernel-check: --top-k %lld exceeds "
                                 "--experts %lld\n%s",
                         (long long)o.topK, (long long)o.experts, kUsage),
            false);
  if (!o.check && o.emitPtx.empty() && !o.printSource)
    return (std::fprintf(stderr, "moe-kernel-check: nothing to do\n%s",
                         kUsage),
            false);
  return true;
}

using HostKernel4 = void (*)(void *, void *, void *, void *, int64_t, int64_t,
                             int64_t, int64_t, int64_t, int64_t, int64_t);
using HostKernel5 = void (*)(void *, void *, void *, void *, void *, int64_t,
                             int64_t, int64_t, int64_t, int64_t, int64_t,
                             int64_t);

int check(const Options &o) {
  mlir::DialectRegistry registry;
  registry.insert<mlir::arith::ArithDialect, mlir::cf::ControlFlowDialect,
                  mlir::func::FuncDialect, mlir::LLVM::LLVMDialect,
                  mlir::scf::SCFDialect>();
  mlir::registerAllExtensions(registry);
  mlir::registerBuiltinDialectTranslation(registry);
  mlir::registerLLVMDialectTranslation(registry);
  mlir::MLIRContext context(registry);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(mlir::moe::moeKernelSource(false),
                                              &context);
  if (!module) {
    std::fprintf(stderr, "moe-kernel-check: the host kernels do not parse\n");
    return 1;
  }
  mlir::PassManager pm(&context);
  pm.addPass(mlir::createSCFToControlFlowPass());
  pm.addPass(mlir::createArithToLLVMConversionPass());
  pm.addPass(mlir::createConvertControlFlowToLLVMPass());
  pm.addPass(mlir::createConvertFuncToLLVMPass());
  pm.addPass(mlir::createReconcileUnrealizedCastsPass());
  if (mlir::failed(pm.run(*module))) {
    std::fprintf(stderr, "moe-kernel-check: lowering for the host failed\n");
    return 1;
  }
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  // The options hold a function_ref: the transformer must outlive them.
  std::function<llvm::Error(llvm::Module *)> optimize =
      mlir::makeOptimizingTransformer(2, 0, nullptr);
  mlir::ExecutionEngineOptions engineOptions;
  engineOptions.transformer = optimize;
  auto engine = mlir::ExecutionEngine::create(*module, engineOptions);
  if (!engine) {
    std::fprintf(stderr, "moe-kernel-check: JIT: %s\n",
                 llvm::toString(engine.takeError()).c_str());
    return 1;
  }
  auto lookup = [&](const char *name) -> void * {
    auto symbol = (*engine)->lookup(name);
    if (!symbol) {
      llvm::consumeError(symbol.takeError());
      return nullptr;
    }
    return *symbol;
  };
  auto dispatch = reinterpret_cast<HostKernel4>(lookup("moe_dispatch_host"));
  auto combine = reinterpret_cast<HostKernel5>(lookup("moe_combine_host"));
  auto dispatchGrad =
      reinterpret_cast<HostKernel4>(lookup("moe_dispatch_grad_host"));
  if (!dispatch || !combine || !dispatchGrad) {
    std::fprintf(stderr, "moe-kernel-check: a host kernel is missing\n");
    return 1;
  }

  // Random routing: distinct experts per token, slots in token order until
  // the capacity is full (later ones dropped).
  const int64_t S = o.tokens, k = o.topK, M = o.model, E = o.experts,
                C = o.capacity;
  std::mt19937 rng(o.seed);
  std::vector<int32_t> experts, slots, used(static_cast<size_t>(E), 0);
  for (int64_t s = 0; s < S; ++s) {
    std::vector<int32_t> order(static_cast<size_t>(E));
    for (int32_t e = 0; e < E; ++e)
      order[e] = e;
    std::shuffle(order.begin(), order.end(), rng);
    for (int64_t j = 0; j < k; ++j) {
      experts.push_back(order[j]);
      slots.push_back(used[order[j]] < C ? used[order[j]]++ : -1);
    }
  }
  int64_t dropped = 0;
  for (int32_t slot : slots)
    dropped += slot < 0;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto randoms = [&](int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float &x : v)
      x = normal(rng);
    return v;
  };
  std::vector<float> x = randoms(S * M), weights = randoms(S * k),
                     buffer = randoms(E * C * M);
  moert::DispatchShape shape{S, M, E, k, C};
  moert::TokenRouting routing{experts.data(), slots.data()};

  int failures = 0;
  auto compare = [&](const char *what, const std::vector<float> &want,
                     const std::vector<float> &got, double tolerance) {
    for (size_t i = 0; i < want.size(); ++i) {
      const bool same = tolerance == 0
                            ? std::memcmp(&want[i], &got[i], 4) == 0
                            : std::fabs(want[i] - got[i]) <=
                                  tolerance * (1 + std::fabs(want[i]));
      if (!same) {
        std::printf("%s: MISMATCH at element %zu: CPU %.9g, generated %.9g\n",
                    what, i, want[i], got[i]);
        ++failures;
        return;
      }
    }
    std::printf("%s: match (%zu elements%s)\n", what, want.size(),
                tolerance == 0 ? ", bit for bit" : "");
  };
  // Launch shapes that exercise the block and thread strides.
  for (auto [blocks, threads] :
       {std::pair<int64_t, int64_t>{3, 4}, {64, 32}, {1, 1}}) {
    std::printf("launch %lld blocks x %lld threads, %lld of %lld choices "
                "dropped\n",
                (long long)blocks, (long long)threads, (long long)dropped,
                (long long)(S * k));
    std::vector<float> want(static_cast<size_t>(E * C * M)),
        got(want.size(), 0.0f);
    if (!moert::dispatchTokens(shape, routing, x.data(), want.data()).ok())
      return 1;
    dispatch(x.data(), experts.data(), slots.data(), got.data(), S, k, M, E,
             C, blocks, threads);
    compare("moe_dispatch", want, got, 0);

    std::vector<float> y(static_cast<size_t>(S * M)), gy(y.size(), -1.0f);
    if (!moert::combineTokens(shape, routing, weights.data(), buffer.data(),
                              y.data())
             .ok())
      return 1;
    combine(buffer.data(), experts.data(), slots.data(), weights.data(),
            gy.data(), S, k, M, E, C, blocks, threads);
    compare("moe_combine", y, gy, 1e-6);

    std::vector<float> dx(static_cast<size_t>(S * M)), gdx(dx.size(), -1.0f);
    if (!moert::dispatchTokensBackward(shape, routing, buffer.data(),
                                       dx.data())
             .ok())
      return 1;
    dispatchGrad(buffer.data(), experts.data(), slots.data(), gdx.data(), S, k,
                 M, E, C, blocks, threads);
    compare("moe_dispatch_grad", dx, gdx, 0);
  }
  return failures ? 1 : 0;
}

} // namespace

int main(int argc, char **argv) {
  Options o;
  if (!parse(argc, argv, o))
    return 2;
  if (o.printSource)
    std::fputs(mlir::moe::moeKernelSource(true).c_str(), stdout);
  for (int sm : o.sms) {
    if (o.emitPtx.empty())
      break;
    std::string error;
    mlir::FailureOr<std::string> ptx = mlir::moe::moeKernelPtx(sm, &error);
    if (mlir::failed(ptx)) {
      std::fprintf(stderr, "moe-kernel-check: %s\n", error.c_str());
      return 1;
    }
    const std::string path =
        o.emitPtx + "/moe_kernels.sm_" + std::to_string(sm) + ".ptx";
    std::ofstream out(path);
    out << *ptx;
    out.close();
    if (!out) {
      std::fprintf(stderr, "moe-kernel-check: cannot write '%s'\n",
                   path.c_str());
      return 1;
    }
    std::printf("wrote %s (%zu bytes)\n", path.c_str(), ptx->size());
  }
  return o.check ? check(o) : 0;
}
