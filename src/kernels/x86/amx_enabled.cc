// qfx kernels, x86: whether the int8 kernels may use Intel AMX tiles on this machine (path.cc asks).
// Needs the CPU's AMX-TILE and AMX-INT8 features and the kernel's permission for the tile state
// (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), Linux 5.16+); QFX_DISABLE_AMX=1 turns it off.
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>

#include "src/kernels/qu8_dispatch.h"

namespace qfx {
namespace kernels {

bool AmxEnabled() {
  static const bool enabled = [] {
    const char* off = std::getenv("QFX_DISABLE_AMX");
    if (off != nullptr && off[0] != '\0' && off[0] != '0') return false;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool tile = (d >> 24) & 1, int8 = (d >> 25) & 1;
    if (!tile || !int8) return false;
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtileData = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtileData) == 0;
  }();
  return enabled;
}

}  // namespace kernels
}  // namespace qfx
