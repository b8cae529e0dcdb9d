// moe-offload on the demo model (E+Z-Offload).
//
// mode=optimizer: the AdamW moments are marked for host memory; nothing
// else changes.
// RUN: moe-opt %models/demo.mlir --moe-training-pipeline -o %t.base.mlir
// RUN: moe-opt %t.base.mlir --moe-offload=mode=optimizer -o %t.opt.mlir
// Moment arguments carry moe.opt_state then moe.state_of (results carry
// moe.role): each one gains the placement in between.
// RUN: grep -c 'moe.opt_state = "exp_avg[_sq]*", moe.state_of' %t.base.mlir
// RUN: not grep 'moe.opt_state = "exp_avg[_sq]*", moe.state_of' %t.opt.mlir
// RUN: grep -c 'moe.opt_state = "exp_avg[_sq]*", moe.placement = "host", moe.state_of' %t.opt.mlir
// RUN: not grep -E "moe.convert|moe.device_copy|@refresh_params" %t.opt.mlir
//
// mode=params through the pipeline (bf16 GEMMs): every linear and expert
// weight gets a bf16 device copy that the GEMMs read through moe.convert;
// router, embedding, norms and biases stay fp32 on the device.
// RUN: moe-opt %models/demo.mlir --moe-training-pipeline="precision=bf16 offload=params" -o %t.params.mlir
// RUN: FileCheck %s --check-prefix=PARAMS < %t.params.mlir
// The IR round-trips through the verifiers.
// RUN: moe-opt %t.params.mlir -o /dev/null
// 32 copies (24 attention projections, 4 dense FFN and 4 expert weights):
// RUN: grep -o 'moe.device_copy = "[^"]*"' %t.params.mlir | sort -u | wc -l | FileCheck %s --check-prefix=COUNT
// COUNT: 32
// No router, embedding, norm or bias has a copy.
// RUN: not grep -E 'moe.device_copy = "[^"]*(gate|embed|norm|bias)' %t.params.mlir
// No linear of the step reads its weight from an argument any more, except
// the output projection tied to the embedding (an fp32 parameter):
// RUN: awk '/func.func @train_step/,/^  }/' %t.params.mlir | grep -E "moe.linear %[^,]+, %arg[0-9]+" > %t.direct
// RUN: grep -c transpose_weight %t.direct
// RUN: not grep -v transpose_weight %t.direct
//
// Gradient streaming (moe-stream-gradients, part of the pipeline with
// offload): every AdamW runs on the host and reads its gradient from a host
// buffer that moe.to_host filled right after the gradient's sum of squares.
// RUN: grep -c "= moe.adamw" %t.params.mlir > %t.updates
// RUN: grep -c "= moe.to_host" %t.params.mlir | diff - %t.updates
// RUN: grep -o 'moe.grad_buffer = "[^"]*", moe.placement = "host"' %t.params.mlir | wc -l | diff - %t.updates
// RUN: FileCheck %s --check-prefix=STREAM < %t.params.mlir
// STREAM: %[[SUM:.*]] = moe.sum_squares dense %[[G:[^ ]+]] :
// STREAM-NEXT: %[[H:.*]] = moe.to_host %[[G]] into %arg{{[0-9]+}} : tensor<
// STREAM: moe.adamw {{dense|expert}} %arg{{[0-9]+}}, %[[H]],
//
// PARAMS-LABEL: func.func @train_step(
// PARAMS-SAME: moe.param = "encoder.layers.0.self_attn.q.weight", moe.placement = "host"
// PARAMS-SAME: moe.opt_state = "exp_avg", moe.placement = "host"
// PARAMS-SAME: %[[QCOPY:arg[0-9]+]]: tensor<128x128xbf16> {moe.device_copy = "encoder.layers.0.self_attn.q.weight"}
// PARAMS-SAME: moe.role = "new_device_copy"
// PARAMS: %[[Q:.*]] = moe.convert %[[QCOPY]] : tensor<128x128xbf16> -> tensor<128x128xf32>
// PARAMS-NEXT: moe.linear %{{[0-9]+}}, %[[Q]], %arg4 {compute_type = bf16}
// The first copied parameter's update (arguments 0-2: embedding, norm):
// PARAMS: %[[NEW:[^,]*]], %{{.*}}, %{{.*}} = moe.adamw dense %arg3,
// PARAMS-NEXT: moe.convert %[[NEW]] : tensor<128x128xf32> -> tensor<128x128xbf16>
// PARAMS-LABEL: func.func @refresh_params(
// PARAMS-SAME: moe.param = "encoder.layers.0.self_attn.q.weight"
// PARAMS-SAME: moe.device_copy = "encoder.layers.0.self_attn.q.weight"
// PARAMS: moe.convert %arg0 : tensor<128x128xf32> -> tensor<128x128xbf16>
//
// ZeRO-2 on dp=2 x ep=2: each rank's master is its shard (the moments'
// sharding; the all-slice that cut it is gone) and the updated shard is
// all-gathered in bf16 into the copy, as @refresh_params does.
// RUN: moe-opt %models/demo.mlir --moe-training-pipeline="precision=bf16 dp=2 ep=2 zero=2 offload=params" -o %t.zero.mlir
// RUN: FileCheck %s --check-prefix=ZERO < %t.zero.mlir
// ZERO-LABEL: func.func @train_step(
// ZERO-SAME: tensor<32x128xf32> {moe.init = {{.*}}, moe.param = "encoder.layers.0.self_attn.q.weight", moe.placement = "host", moe.sharding = [array<i16: 0, 1>, array<i16>]}
// ZERO: shard.all_gather %{{.*}} on @grid grid_axes = [0, 1] gather_axis = 0 : tensor<32x128xbf16> -> tensor<128x128xbf16>
// ZERO-LABEL: func.func @refresh_params(
// ZERO: moe.convert %arg0 : tensor<32x128xf32> -> tensor<32x128xbf16>
// ZERO-NEXT: shard.all_gather %{{.*}} on @grid grid_axes = [0, 1] gather_axis = 0 : tensor<32x128xbf16> -> tensor<128x128xbf16>
//
// fp16 copies with fp16 GEMMs.
// RUN: moe-opt %models/demo.mlir --moe-training-pipeline="precision=fp16 offload=params" | FileCheck %s --check-prefix=F16
// F16: moe.device_copy = "encoder.layers.0.self_attn.q.weight"
// F16: moe.convert %{{.*}} : tensor<128x128xf16> -> tensor<128x128xf32>
//
// Refused: fp32 GEMMs (the copies are 16-bit) and decoding functions
// (they would read masters in host memory).
// RUN: not moe-opt %models/demo.mlir --moe-training-pipeline="offload=params" -o /dev/null 2>&1 | FileCheck %s --check-prefix=FP32
// FP32: moe-offload: mode=params keeps 16-bit parameter copies on the device, expected device-type=bf16 or fp16 (the pipeline takes it from precision=bf16|fp16), found fp32
// RUN: not moe-opt %models/demo.mlir --moe-training-pipeline="precision=bf16 offload=params decoder=true" -o /dev/null 2>&1 | FileCheck %s --check-prefix=DECODER
// DECODER: error: moe-offload: mode=params keeps master weights in host memory, where @encode cannot read them; compile the decoding plan without offload (it loads the same checkpoints)
