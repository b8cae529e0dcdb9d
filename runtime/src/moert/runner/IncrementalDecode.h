//===- IncrementalDecode.h - Decoding with @decode_step -----*- C++ -*-===//
//
// A next-token function (eval/Decode.h) over the programs moe-build-decoder
// compiles into a plan: `encode` runs once per batch of sources and leaves
// the states the decoder reads; `decode_step` runs the decoder for one new
// token per sequence against caches of the keys and values of the earlier
// positions, and returns the logits and the new key / value rows.
//
// The function keeps, per live prefix (source and tokens), the rows of
// every cache on the host, and per source its encoder states; each call
// runs one decoder step for every prefix, B rows of one prefix length at a
// time (B: the programs' batch), from the cached rows of its parent (the
// prefix without its last token, from the call before: greedy decoding and
// beam search extend every prefix by one token per call, and beam search
// reorders and forks hypotheses freely). A prefix whose parent is not
// cached (any other calling order) has its earlier positions run again.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_RUNNER_INCREMENTALDECODE_H
#define MOERT_RUNNER_INCREMENTALDECODE_H

#include "moert/eval/Decode.h"
#include "moert/exec/Executor.h"

#include <cstdint>
#include <vector>

namespace moert {
namespace runner {

/// True when `program` has the `encode` and `decode_step` entry points.
bool hasIncrementalDecoder(const exec::Program &program);

/// The next-token function of `executor`'s entry points over `sources`
/// (token ids, each ending with </s>, at most the encoder's length; pads
/// `padId`). Checks the entry points' inputs and outputs first. The
/// executor must outlive the function and run nothing else meanwhile
/// (the programs share its arena and persistent buffers). `seed` keys the
/// gates' randomness, which evaluation mode does not draw.
Expected<eval::NextTokenFn>
incrementalNextTokenFunction(exec::Executor &executor,
                             std::vector<std::vector<int32_t>> sources,
                             int32_t padId, uint64_t seed);

} // namespace runner
} // namespace moert

#endif // MOERT_RUNNER_INCREMENTALDECODE_H
