// expected-error @+1 {{argument #0: 'moe.input' must be a non-empty string}}
func.func private @input_not_string(tensor<2x8xi32> {moe.input = unit})
