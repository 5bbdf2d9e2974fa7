// How many threads a CPU forward should use by default: the physical cores this process may run
// on (SMT siblings share one core's FMA units, so a second thread per core only adds contention).
#pragma once

namespace vitmsn {

int physical_core_count();

}  // namespace vitmsn
