// lowbit/lowbit.h — umbrella header for the lowbit C++ API.
#ifndef LOWBIT_LOWBIT_H_
#define LOWBIT_LOWBIT_H_

#include "lowbit/dtype.h"
#include "lowbit/context.h"
#include "lowbit/convert.h"
#include "lowbit/format.h"
#include "lowbit/format_layout.h"
#include "lowbit/fp8.h"
#include "lowbit/nn/linear.h"
#include "lowbit/nn/lora.h"
#include "lowbit/nn/optim.h"
#include "lowbit/nn/qat.h"
#include "lowbit/ops.h"
#include "lowbit/quant_state.h"
#include "lowbit/quantize.h"
#include "lowbit/status.h"

#endif  // LOWBIT_LOWBIT_H_
