// printProfile (Commands.h): `--profile` tables of run / generate.
#include "runtime-stub/core/Program.h"
#include "runtime-stub/tools/Commands.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace kiln {
namespace rt {

void printProfile(const Program &program, std::FILE *out) {
  constexpr size_t kSlowest = 12;
  for (const std::string &method : program.methodNames()) {
    std::vector<InstructionProfile> prof = program.profile(method);
    if (prof.empty())
      continue;
    uint64_t total = 0, runs = 0;
    for (const InstructionProfile &p : prof) {
      total += p.nanoseconds;
      runs = std::max(runs, p.calls);
    }
    const double perRunUs = 1e-3 * (double)total / (double)runs;
    std::fprintf(out, "profile of method %s: %llu runs, %.1f us per run in %zu instructions\n",
                 method.c_str(), (unsigned long long)runs, perRunUs, prof.size());
    struct ByOp {
      uint64_t ns = 0, count = 0;
    };
    std::map<std::string, ByOp> ops;
    for (const InstructionProfile &p : prof) {
      ops[p.op].ns += p.nanoseconds;
      ++ops[p.op].count;
    }
    std::vector<std::pair<std::string, ByOp>> sorted(ops.begin(), ops.end());
    std::sort(sorted.begin(), sorted.end(),
              [](const auto &a, const auto &b) { return a.second.ns > b.second.ns; });
    std::fprintf(out, "  %-24s %8s %12s %7s\n", "op", "instrs", "us per run", "share");
    for (const auto &[op, b] : sorted)
      std::fprintf(out, "  %-24s %8llu %12.1f %6.1f%%\n", op.c_str(), (unsigned long long)b.count,
                   1e-3 * (double)b.ns / (double)runs, 100.0 * (double)b.ns / (double)total);
    std::sort(prof.begin(), prof.end(), [](const InstructionProfile &a, const InstructionProfile &b) {
      return a.nanoseconds > b.nanoseconds;
    });
    std::fprintf(out, "  slowest instructions:\n  %6s %-22s %-24s %11s %7s\n", "#", "op",
                 "output", "us per call", "share");
    for (size_t i = 0; i < std::min(kSlowest, prof.size()); ++i) {
      const InstructionProfile &p = prof[i];
      std::fprintf(out, "  %6u %-22s %-24s %11.2f %6.1f%%\n", p.index, p.op.c_str(),
                   p.output.c_str(), 1e-3 * (double)p.nanoseconds / (double)p.calls,
                   100.0 * (double)p.nanoseconds / (double)total);
    }
  }
}

} // namespace rt
} // namespace kiln
