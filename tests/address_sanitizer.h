// EQPROP_UNDER_ASAN: 1 in a build instrumented by AddressSanitizer (scripts/sanitize.sh;
// gcc defines __SANITIZE_ADDRESS__, clang has the feature test), else 0. Tests whose
// subject is memory itself (address-space limits, peak resident memory) skip there:
// ASan's shadow memory and quarantine change both.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define EQPROP_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EQPROP_UNDER_ASAN 1
#endif
#endif
#ifndef EQPROP_UNDER_ASAN
#define EQPROP_UNDER_ASAN 0
#endif
