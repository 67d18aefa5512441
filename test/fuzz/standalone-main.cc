// main() for a fuzz target built without libFuzzer (g++, or a clang without compiler-rt's
// fuzzer runtime): runs every input file given, and every file of every directory given, once
// (what libFuzzer does with -runs=0). With -runs=N it then runs N variants of those inputs,
// truncated and byte-mutated at random from -seed=S (default 1): a fixed seed replays the same
// variants. Other -flags are accepted and ignored, so scripts can pass libFuzzer's.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

bool ReadFile(const std::string& path, std::vector<std::vector<uint8_t>>& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  out.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

void RunOne(const std::vector<uint8_t>& b, size_t n) {
  // Exactly n bytes on the heap: a read past them is an ASan report.
  uint8_t* p = static_cast<uint8_t*>(std::malloc(n ? n : 1));
  if (n) std::memcpy(p, b.data(), n);
  LLVMFuzzerTestOneInput(p, n);
  std::free(p);
}

}  // namespace

int main(int argc, char** argv) {
  long runs = 0;
  unsigned long seed = 1;
  std::vector<std::vector<uint8_t>> inputs;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a.rfind("-runs=", 0) == 0) {
      runs = std::atol(a.c_str() + 6);
    } else if (a.rfind("-seed=", 0) == 0) {
      seed = std::strtoul(a.c_str() + 6, nullptr, 10);
    } else if (a[0] == '-') {
      continue;
    } else if (std::filesystem::is_directory(a)) {
      for (const auto& e : std::filesystem::directory_iterator(a)) {
        if (e.is_regular_file() && !ReadFile(e.path().string(), inputs)) return 2;
      }
    } else if (!ReadFile(a, inputs)) {
      std::fprintf(stderr, "cannot read %s\n", a.c_str());
      return 2;
    }
  }
  for (const auto& b : inputs) RunOne(b, b.size());
  std::mt19937 rng(static_cast<uint32_t>(seed));
  long mutated = 0;
  for (long it = 0; it < runs && !inputs.empty(); it++, mutated++) {
    std::vector<uint8_t> b = inputs[it % inputs.size()];
    if (!b.empty()) {
      for (int e = int(rng() % 8); e > 0; e--) b[rng() % b.size()] = uint8_t(rng());
    }
    size_t n = rng() % 3 == 0 ? rng() % (b.size() + 1) : b.size();
    RunOne(b, n);
  }
  std::printf("Done %zu inputs, %ld mutated runs, seed %lu\n", inputs.size(), mutated, seed);
  return 0;
}
