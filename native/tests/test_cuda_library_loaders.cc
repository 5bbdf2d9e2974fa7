// The run-time loaders of cuBLASLt and nvJPEG (cuda/library_search.h) on a machine without them
// (every build machine): they search the documented places in order, never a stubs/ folder, and fail
// with a reason that names what they tried; a file that is not a shared library is skipped.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <unistd.h>

#include "cuda/cublaslt_loader.h"
#include "cuda/nvjpeg_loader.h"
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
  // nvJPEG: its own override knob and sonames, the same places.
  const std::string fake_nj = std::string(dir) + "/libnvjpeg.so.13";
  std::ofstream(fake_nj) << "not a shared library either";
  setenv("VITMSN_NVJPEG_PATH", fake_nj.c_str(), 1);  // a file, not a folder
  const vitmsn::NvjpegLibrary& nj = vitmsn::nvjpeg_library();
  if (nj.api == nullptr) {
    check(nj.reason.find(fake_nj) != std::string::npos, "nvJPEG: the override file was tried first");
    check(nj.reason.find("/opt/site-packages/nvidia/nvjpeg/lib/libnvjpeg.so.12") != std::string::npos,
          "nvJPEG: the wheels' nvidia/nvjpeg/lib and the .so.12 soname are searched");
    check(nj.reason.find("libnvjpeg.so.13, libnvjpeg.so.12 not found") == 0, "nvJPEG: the reason names the sonames");
    check(nj.reason.find("/stubs") == std::string::npos, "nvJPEG: no stubs/ folder is ever searched");
  } else {
    std::printf("note: a real nvJPEG loaded from %s\n", nj.path.c_str());
  }
  unlink(fake_nj.c_str());
  unlink(fake.c_str());
  rmdir(dir);
  return finish();
}
