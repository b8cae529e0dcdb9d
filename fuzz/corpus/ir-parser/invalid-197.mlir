// expected-error @+1 {{argument #1: 'moe.init' needs 'moe.param' on the same argument}}
func.func private @init_without_param(tensor<4xf32> {moe.param = "w"}, tensor<4xf32> {moe.init = #moe.init<zeros>})
