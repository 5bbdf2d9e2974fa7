// The cuBLASLt loader on a machine without cuBLAS (every build machine): it searches the documented
// places in order, never a stubs/ folder, and fails with a reason that names what it tried.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <unistd.h>

#include "cuda/cublaslt_loader.h"
#include "tests/harness.h"

int main() {
  char tmpl[] = "/tmp/vitmsn-lt-XXXXXX";
  const char* dir = mkdtemp(tmpl);
  if (!dir) return 1;
  const std::string fake = std::string(dir) + "/libcublasLt.so.13";
  std::ofstream(fake) << "not a shared library";
  setenv("VITMSN_CUBLASLT_PATH", dir, 1);
  setenv("CUDA_PATH", "/opt/cuda-test", 1);
  setenv("PYTHONPATH", "/opt/site-packages", 1);

  const auto c = vitmsn::cublaslt_candidates();
  check(!c.empty() && c.front() == fake, "VITMSN_CUBLASLT_PATH (a folder) is searched first");
  bool saw_soname = false, saw_cuda_path = false, saw_wheel = false, saw_stubs = false;
  for (const auto& p : c) {
    saw_soname |= p == "libcublasLt.so.13";
    saw_cuda_path |= p == "/opt/cuda-test/lib64/libcublasLt.so.13";
    saw_wheel |= p == "/opt/site-packages/nvidia/cu13/lib/libcublasLt.so.13";
    saw_stubs |= p.find("/stubs") != std::string::npos;
  }
  check(saw_soname, "the default loader path (bare soname) is searched");
  check(saw_cuda_path, "$CUDA_PATH/lib64 is searched");
  check(saw_wheel, "Python wheels' nvidia/cu13/lib is searched");
  check(!saw_stubs, "no stubs/ folder is ever searched");

  const vitmsn::CublasLtLibrary& lib = vitmsn::cublaslt();
  if (lib.api == nullptr) {
    check(lib.reason.find(fake) != std::string::npos, "the failure reason lists the paths tried");
  } else {
    std::printf("note: a real cuBLASLt loaded from %s\n", lib.path.c_str());
    check(!lib.path.empty(), "a loaded library reports its path");
  }
  unlink(fake.c_str());
  rmdir(dir);
  return finish();
}
