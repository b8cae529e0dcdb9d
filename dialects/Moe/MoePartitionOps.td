//===- MoePartitionOps.td - Ops that moe-partition introduces -*- tablegen -*-===//
//
// Local computations that only exist in a partitioned (per-rank) program:
// the loss normalizer of a token-sharded cross entropy and the bias of a
// row-parallel linear, added once after its all-reduce; the packing of
// gradient buckets. Collectives are ops of the upstream `shard` dialect.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_PARTITION_OPS_TD
#define MOE_PARTITION_OPS_TD

include "dialects/Moe/MoeOps.td"

def Moe_TokenCountOp : Moe_Op<"token_count", [Pure]> {
  let summary = "number of labels that count towards the loss";
  let description = [{
    Counts the elements of `labels` that differ from `ignore_index`, as an
    f32 scalar. The partitioner divides a token shard's cross entropy by
    the all-reduced count, so that the sum over shards is the mean over the
    whole batch.

    ```mlir
    %n = moe.token_count %labels {ignore_index = 0 : i64}
        : tensor<4x32xi32> -> tensor<f32>
    ```
  }];
  let arguments = (ins
    Moe_IndexTensor:$labels,
    DefaultValuedAttr<I64Attr, "-100">:$ignore_index
  );
  let results = (outs Moe_Scalar:$count);
  let assemblyFormat = [{
    $labels attr-dict `:` type($labels) `->` type($count)
  }];
}

def Moe_BiasAddOp : Moe_Op<"bias_add", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "adds a bias vector along the last dimension";
  let description = [{
    `result[..., n] = input[..., n] + bias[n]`. A row-parallel linear runs
    without its bias; the bias is added once, after the all-reduce of the
    partial products.

    ```mlir
    %y = moe.bias_add %x, %b : tensor<4x32x128xf32>, tensor<128xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_FloatTensor:$bias);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $bias attr-dict `:` type($input) `,` type($bias)
  }];
  let hasVerifier = 1;
}

def Moe_PackOp : Moe_Op<"pack", [Pure]> {
  let summary = "concatenates tensors, flattened, into one 1-D buffer";
  let description = [{
    The elements of every operand, in order and row-major, one after the
    other: `result[offset_i + j] = flatten(operand_i)[j]` with `offset_i` the
    element count of the operands before it. `moe-bucket-gradients` packs
    the gradients of a bucket so that one collective reduces them all.

    With `chunks = N` (default 1) every operand is cut into N equal parts
    and the result holds part 0 of every operand, then part 1 of every
    operand, and so on: rank r of a reduce-scatter over N ranks along
    dimension 0 receives part r of every operand, which is its ZeRO shard
    of each gradient, in one collective. Each operand's element count must
    be a multiple of N.

    ```mlir
    %flat = moe.pack %g0, %g1 : tensor<128x512xf32>, tensor<512xf32>
        -> tensor<66048xf32>
    %rows = moe.pack %g0, %g1 {chunks = 2 : i64}
        : tensor<128x512xf32>, tensor<512xf32> -> tensor<66048xf32>
    ```
  }];
  let arguments = (ins Variadic<Moe_FloatTensor>:$inputs,
                       DefaultValuedAttr<I64Attr, "1">:$chunks);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $inputs attr-dict `:` type($inputs) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Moe_UnpackOp : Moe_Op<"unpack", [Pure]> {
  let summary = "one tensor from a range of a 1-D buffer";
  let description = [{
    `flatten(result)[j] = input[offset + j]`: the inverse of `moe.pack` for
    one of its operands (`offset` in elements).

    With `chunks = N` (default 1) the input is N equal rows and the result
    is N equal parts, part c taken from row c at `offset`:
    `flatten(result)[c * k + j] = input[c * (size(input) / N) + offset + j]`
    with `k = size(result) / N`. This is the inverse of a pack with
    `chunks = N`, and unpacks a parameter from the all-gather of packed
    ZeRO shards (row r is what rank r contributed).

    ```mlir
    %g1 = moe.unpack %flat {offset = 65536 : i64}
        : tensor<66048xf32> -> tensor<512xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, I64Attr:$offset,
                       DefaultValuedAttr<I64Attr, "1">:$chunks);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

#endif // MOE_PARTITION_OPS_TD
