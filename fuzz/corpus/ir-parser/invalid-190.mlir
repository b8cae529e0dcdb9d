//===----------------------------------------------------------------------===//
// Function argument and result annotations
//===----------------------------------------------------------------------===//

// expected-error @+1 {{argument #0: 'moe.param' must be a non-empty string}}
func.func private @param_not_string(tensor<4xf32> {moe.param = 1 : i64})
