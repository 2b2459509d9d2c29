// qfx tests: running a check once per compiled and supported Highway target.
#pragma once

#include <cstdio>

#include "gtest/gtest.h"
#include "hwy/targets.h"

namespace qfx {
namespace testing {

// Runs body() with the dispatcher forced to each target in turn; `active` names the target the kernel
// under test reports, which must be the forced one.
template <typename Body, typename Active>
void ForEachTarget(Active active, Body body) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    std::printf("target %s\n", hwy::TargetName(target));
    EXPECT_STREQ(active(), hwy::TargetName(target));
    body();
  }
  hwy::SetSupportedTargetsForTest(0);
}

}  // namespace testing
}  // namespace qfx
