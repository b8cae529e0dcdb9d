//===- MoeDecodeOps.td - Ops of incremental decoding --------*- tablegen -*-===//
//
// The ops moe-build-decoder emits into @decode_step: one decoder step over
// the keys and values of the earlier target positions, which the caller
// keeps in caches between steps.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_DECODE_OPS_TD
#define MOE_DECODE_OPS_TD

def Moe_EmbeddingAtOp : Moe_Op<"embedding_at", [Pure]> {
  let summary = "token embedding of target positions from a runtime offset";
  let description = [{
    `moe.embedding` of tokens `[..., L]` that sit at positions
    `offset .. offset + L - 1` of their sequence rather than `0 .. L - 1`:
    the positional encoding (`sinusoidal`, or rows of the `learned`
    `positions` table) is that of those positions. `offset` is an i32
    scalar read when the op runs; an offset below 0, or past the positions
    table, is a runtime error. Incremental decoding embeds the one new token
    of every sequence with it.

    ```mlir
    %h = moe.embedding_at sinusoidal %tokens, %table offset %pos {scaled}
        : (tensor<8x1xi32>, tensor<1000x128xf32>, tensor<i32>)
          -> tensor<8x1x128xf32>
    ```
  }];
  let arguments = (ins
    Moe_IndexTensor:$tokens,
    Moe_FloatTensor:$table,
    Optional<Moe_FloatTensor>:$positions,
    0DTensorOf<[I32]>:$offset,
    Moe_PositionKind:$position,
    UnitAttr:$scaled
  );
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $position $tokens `,` $table (`positions` $positions^)? `offset` $offset
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_CacheUpdateOp : Moe_Op<"cache_update", [Pure]> {
  let summary = "a key/value cache with the rows of new positions written in";
  let description = [{
    `cache` is `[B, T, D]` (the keys or values of positions `0 .. T - 1` of
    B sequences), `rows` is `[B, L, D]`; the result is `cache` with
    positions `offset .. offset + L - 1` of every sequence replaced by
    `rows`. `offset` is an i32 scalar read when the op runs; `offset + L`
    past `T` is a runtime error.

    ```mlir
    %k = moe.cache_update %cache, %k_new, %pos
        : (tensor<8x32x128xf32>, tensor<8x1x128xf32>, tensor<i32>)
          -> tensor<8x32x128xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$cache, Moe_FloatTensor:$rows,
                       0DTensorOf<[I32]>:$offset);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $cache `,` $rows `,` $offset attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

#endif // MOE_DECODE_OPS_TD
